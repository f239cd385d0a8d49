local t = require('helpers')
local util = require('repoctx.util')

describe('split_lines', function()
  it('splits on newlines and drops carriage returns', function()
    t.eq({ 'a', 'b', '' }, util.split_lines('a\r\nb\n'))
    t.eq({ '' }, util.split_lines(''))
    t.eq({ 'one' }, util.split_lines('one'))
  end)

  it('limits lines', function()
    t.eq('a\nb', util.limit_lines('a\nb\nc', 2))
    t.eq('a\nb\nc', util.limit_lines('a\nb\nc', nil))
    t.eq('a', util.limit_lines('a', 1))
  end)
end)

describe('next_word', function()
  it('takes leading blanks and one word', function()
    t.eq('compute_slug', util.next_word('compute_slug(value)'))
    t.eq('  return', util.next_word('  return slug'))
  end)

  it('takes a run of punctuation', function()
    t.eq('(', util.next_word('(value)'))
    t.eq(')):', util.next_word(')):\n'))
    t.eq(' ==', util.next_word(' == 3'))
  end)

  it('takes a line break with the next indentation', function()
    t.eq('\n    ', util.next_word('\n    return slug'))
    t.eq('\r\n', util.next_word('\r\nx'))
  end)

  it('treats UTF-8 letters as part of words', function()
    t.eq('größe', util.next_word('größe = 1'))
  end)

  it('handles trailing blanks and empty text', function()
    t.eq('   ', util.next_word('   '))
    t.eq('', util.next_word(''))
  end)
end)

describe('next_line', function()
  it('takes the rest of the current line', function()
    t.eq('compute_slug(value)', util.next_line('compute_slug(value)\n    return slug'))
  end)

  it('takes the break and the next line when at a line end', function()
    t.eq('\n    return slug', util.next_line('\n    return slug\nmore'))
  end)

  it('takes everything from a single line', function()
    t.eq('x = 1', util.next_line('x = 1'))
  end)
end)

describe('take', function()
  it('splits accepted and remaining text', function()
    t.eq({ 'foo', '(bar)\nbaz' }, { util.take('foo(bar)\nbaz', 'word') })
    t.eq({ 'foo(bar)', '\nbaz' }, { util.take('foo(bar)\nbaz', 'line') })
    t.eq({ 'foo(bar)\nbaz', '' }, { util.take('foo(bar)\nbaz', 'all') })
  end)

  it('walks a whole suggestion word by word', function()
    local rest, words = 'a.b(c)\n  d', {}
    while rest ~= '' do
      local word
      word, rest = util.take(rest, 'word')
      words[#words + 1] = word
    end
    t.eq({ 'a', '.', 'b', '(', 'c', ')', '\n  ', 'd' }, words)
  end)
end)

describe('render_chunks', function()
  it('puts the first line in virt_text and the rest in virt_lines', function()
    local opts = util.render_chunks('first\n  second\n\nfourth', 'Hl')
    t.eq({ { 'first', 'Hl' } }, opts.virt_text)
    t.eq('inline', opts.virt_text_pos)
    t.eq({ { { '  second', 'Hl' } }, { { '', 'Hl' } }, { { 'fourth', 'Hl' } } }, opts.virt_lines)
  end)

  it('has no virt_lines for a single line', function()
    local opts = util.render_chunks('only', 'Hl', 'overlay')
    t.eq(nil, opts.virt_lines)
    t.eq('overlay', opts.virt_text_pos)
  end)

  it('expands tabs in virt_lines', function()
    local opts = util.expand_tabs(util.render_chunks('a\n\tb', 'Hl'), 4)
    t.eq({ { { '    b', 'Hl' } } }, opts.virt_lines)
  end)
end)

describe('suggestion_from_item', function()
  local ctx = { row = 4, col = 11, line = '    slug = ' }

  it('inserts at the cursor without a range', function()
    t.eq(
      { text = 'slugify(title)', row = 4, col = 11, replace_end = 11 },
      util.suggestion_from_item({ insertText = 'slugify(title)' }, ctx)
    )
  end)

  it('drops what is already typed inside the range', function()
    local item = {
      insertText = 'slug = slugify(title)',
      range = { start = { line = 4, character = 4 }, ['end'] = { line = 4, character = 11 } },
    }
    t.eq({ text = 'slugify(title)', row = 4, col = 11, replace_end = 11 }, util.suggestion_from_item(item, ctx))
  end)

  it('replaces text after the cursor that the range covers', function()
    local line_ctx = { row = 0, col = 4, line = 'foo()' }
    local item = { insertText = 'foo(x)', range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 5 } } }
    t.eq({ text = 'x)', row = 0, col = 4, replace_end = 5 }, util.suggestion_from_item(item, line_ctx))
  end)

  it('replaces a closing bracket the suggestion repeats', function()
    local line_ctx = { row = 0, col = 4, line = 'foo()' }
    t.eq({ text = 'x, y)', row = 0, col = 4, replace_end = 5 }, util.suggestion_from_item({ insertText = 'x, y)' }, line_ctx))
  end)

  it('rejects items that do not match what is typed or lie on other lines', function()
    local wrong = { insertText = 'other', range = { start = { line = 4, character = 4 }, ['end'] = { line = 4, character = 11 } } }
    t.eq(nil, util.suggestion_from_item(wrong, ctx))
    local elsewhere = { insertText = 'x', range = { start = { line = 1, character = 0 }, ['end'] = { line = 1, character = 0 } } }
    t.eq(nil, util.suggestion_from_item(elsewhere, ctx))
    t.eq(nil, util.suggestion_from_item({ insertText = '   ' }, ctx))
    t.eq(nil, util.suggestion_from_item({}, ctx))
  end)

  it('converts LSP characters with to_byte', function()
    local line = 'é = '
    local uctx = { row = 0, col = #line, line = line, to_byte = function(_, character)
      return vim.str_byteindex(line, 'utf-16', character, false)
    end }
    local item = { insertText = 'é = 1', range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 4 } } }
    t.eq({ text = '1', row = 0, col = #line, replace_end = #line }, util.suggestion_from_item(item, uctx))
  end)

  it('limits lines and reads snippets as text', function()
    t.eq('a\nb', util.suggestion_from_item({ insertText = 'a\nb\nc' }, ctx, 2).text)
    t.eq('slugify(title)', util.suggestion_from_item({ insertText = { kind = 'snippet', value = 'slugify(${1:title})$0' } }, ctx).text)
  end)
end)

describe('snippet_to_text', function()
  it('keeps placeholder text and drops tab stops', function()
    t.eq('f(a, b)', util.snippet_to_text('f(${1:a}, ${2:b})$0'))
    t.eq('x = $1', util.snippet_to_text('x = \\$1'))
    t.eq('g(outer)', util.snippet_to_text('g(${1:${2:outer}})'))
    t.eq('pick(one)', util.snippet_to_text('pick(${1|one,two|})'))
  end)
end)

describe('advance', function()
  local s = { text = 'slugify(title)\n    return slug', row = 4, col = 11, replace_end = 11 }

  it('keeps the suggestion when nothing was typed', function()
    t.eq(s, util.advance(s, 4, 11, { '    slug = ' }))
  end)

  it('follows typed text that matches the suggestion', function()
    t.eq(
      { text = 'ify(title)\n    return slug', row = 4, col = 15, replace_end = 15 },
      util.advance(s, 4, 15, { '    slug = slug' })
    )
  end)

  it('follows across a line break', function()
    t.eq(
      { text = 'return slug', row = 5, col = 4, replace_end = 4 },
      util.advance(s, 5, 4, { '    slug = slugify(title)', '    ' })
    )
  end)

  it('drops the suggestion when the typed text differs or it is used up', function()
    t.eq(nil, util.advance(s, 4, 12, { '    slug = x' }))
    t.eq(nil, util.advance(s, 4, 10, { '    slug =' }))
    local short = { text = 'ab', row = 0, col = 0, replace_end = 0 }
    t.eq(nil, util.advance(short, 0, 2, { 'ab' }))
  end)
end)

describe('end_position', function()
  it('moves along one line or to the last inserted line', function()
    t.eq({ 3, 9 }, { util.end_position(3, 4, 'hello') })
    t.eq({ 5, 6 }, { util.end_position(3, 4, 'a\nb\nreturn') })
  end)
end)

describe('format_status', function()
  it('formats each state', function()
    t.eq('repoctx: starting', util.format_status(nil))
    t.eq('repoctx: indexing 3/10', util.format_status({ state = 'indexing', files_indexed = 3, files_total = 10 }))
    t.eq('repoctx: indexing', util.format_status({ state = 'indexing' }))
    t.eq('repoctx · llamacpp · 85 ms', util.format_status({ state = 'ready', engine = 'llamacpp', last_latency_ms = 84.6 }))
    t.eq('repoctx · http · 1.5 s', util.format_status({ state = 'ready', engine = 'http', last_latency_ms = 1530 }))
    t.eq('repoctx: error: model missing', util.format_status({ state = 'error', message = 'model missing' }))
    t.eq('repoctx: warming', util.format_status({ state = 'warming' }))
  end)
end)

describe('context_lines', function()
  it('renders snippets, budget, timings and notes as markdown', function()
    local lines = util.context_lines({
      snippets = {
        { path = 'pkg/util.py', start_line = 3, end_line = 7, source = 'imports', score = 0.75, tokens = 40, text = 'def f():\n    return "```"\n' },
      },
      used_tokens = 40,
      budget = 1024,
      timings_ms = { lexical = 1.24, assemble = 0.5 },
      notes = { 'dense off', '' },
    }, { file = 'pkg/main.py', line = 4, character = 11 })
    local text = table.concat(lines, '\n')
    t.matches('^# repoctx context\n', text)
    t.matches('For `pkg/main.py`, line 5, column 12%.', text)
    t.matches('1 snippet, 40 of 1024 tokens of budget%.', text)
    t.matches('Timings: assemble 0%.5 ms, lexical 1%.2 ms%.', text)
    t.matches('\n%- dense off\n', text)
    t.matches('## 1%. pkg/util%.py, lines 4%-7', text)
    t.matches('source imports · score 0%.750 · 40 tokens', text)
    t.matches('\n````python\ndef f%(%):\n    return "```"\n````', text)
  end)

  it('says when there is no context', function()
    local lines = util.context_lines({ snippets = {}, used_tokens = 0, budget = 512, timings_ms = {}, notes = {} })
    t.matches('No repository context', table.concat(lines, '\n'))
  end)
end)
