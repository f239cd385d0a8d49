-- The extmark renderer and the accept / dismiss keymaps, without a server.
local t = require('helpers')
local ghost = require('repoctx.ghost')
local repoctx = require('repoctx')

local SUGGESTION = 'slugify(article.title)\n    return f"/articles/{slug}"'

local function setup_buffer()
  repoctx.config.keymaps = { accept = '<Tab>', accept_word = '<M-Right>', accept_line = '<M-Down>', dismiss = '<C-]>' }
  repoctx.config.auto_trigger = false
  local bufnr = t.buffer({ 'def article_url(article):', '    slug = ', '', '# end' }, 2, 11)
  repoctx.enable_buffer(bufnr)
  return bufnr
end

--- Enters Insert mode at the end of line 2, shows the suggestion, then types `keys`.
local function show_and_type(keys, text)
  _G.__repoctx_show = function()
    ghost.show(vim.api.nvim_get_current_buf(), { text = text or SUGGESTION, row = 1, col = 11, replace_end = 11 })
  end
  t.feed('2GA<Cmd>lua __repoctx_show()<CR>' .. keys .. '<Esc>')
end

describe('renderer', function()
  it('shows the first line inline and the rest as virtual lines', function()
    local bufnr = setup_buffer()
    ghost.show(bufnr, { text = SUGGESTION, row = 1, col = 11, replace_end = 11 })
    local marks = t.ghost_marks(bufnr)
    t.eq(1, #marks, 'one extmark')
    local _, row, col, details = unpack(marks[1])
    t.eq({ 1, 11 }, { row, col })
    t.eq('inline', details.virt_text_pos)
    t.eq({ { 'slugify(article.title)', 'RepoctxSuggestion' } }, details.virt_text)
    t.eq({ { { '    return f"/articles/{slug}"', 'RepoctxSuggestion' } } }, details.virt_lines)
    t.eq({ 'def article_url(article):', '    slug = ', '', '# end' }, t.lines(bufnr), 'buffer unchanged')
    t.truthy(ghost.get(bufnr), 'suggestion is current')
  end)

  it('draws over text that the suggestion replaces', function()
    local bufnr = t.buffer({ 'foo()' }, 1, 4)
    ghost.show(bufnr, { text = 'x, y)', row = 0, col = 4, replace_end = 5 })
    local details = t.ghost_marks(bufnr)[1][4]
    t.eq('overlay', details.virt_text_pos)
  end)

  it('clears the ghost text', function()
    local bufnr = setup_buffer()
    ghost.show(bufnr, { text = 'x', row = 1, col = 11, replace_end = 11 })
    ghost.clear(bufnr)
    t.eq(0, #t.ghost_marks(bufnr))
    t.eq(nil, ghost.get(bufnr))
  end)

  it('ignores a suggestion past the end of its line', function()
    local bufnr = t.buffer({ 'ab' }, 1, 0)
    ghost.show(bufnr, { text = 'x', row = 0, col = 5, replace_end = 5 })
    t.eq(0, #t.ghost_marks(bufnr))
  end)
end)

describe('keymaps', function()
  it('<Tab> accepts the whole suggestion and moves the cursor behind it', function()
    local bufnr = setup_buffer()
    local cursor
    _G.__repoctx_cursor = function()
      cursor = vim.api.nvim_win_get_cursor(0)
    end
    show_and_type('<Tab><Cmd>lua __repoctx_cursor()<CR>')
    t.eq({
      'def article_url(article):',
      '    slug = slugify(article.title)',
      '    return f"/articles/{slug}"',
      '',
      '# end',
    }, t.lines(bufnr))
    t.eq({ 3, #'    return f"/articles/{slug}"' }, cursor, 'cursor after the inserted text')
    t.eq(0, #t.ghost_marks(bufnr), 'ghost text gone')
  end)

  it('<Tab> does what it does without the plugin when nothing is shown', function()
    local bufnr = setup_buffer()
    t.feed('2GA<Tab>x<Esc>')
    t.eq('    slug =  x', t.lines(bufnr)[2], 'expandtab: spaces up to the next tab stop')
  end)

  it('<M-Right> accepts word by word and keeps the rest visible', function()
    local bufnr = setup_buffer()
    local remaining
    _G.__repoctx_remaining = function()
      remaining = ghost.get(bufnr)
    end
    show_and_type('<M-Right><M-Right><Cmd>lua __repoctx_remaining()<CR>')
    t.eq('    slug = slugify(', t.lines(bufnr)[2])
    t.eq('article.title)\n    return f"/articles/{slug}"', remaining.text)
    t.eq({ 1, #'    slug = slugify(' }, { remaining.row, remaining.col })
  end)

  it('<M-Down> accepts line by line', function()
    local bufnr = setup_buffer()
    local remaining
    _G.__repoctx_remaining = function()
      remaining = ghost.get(bufnr)
    end
    show_and_type('<M-Down><Cmd>lua __repoctx_remaining()<CR>')
    t.eq({ '    slug = slugify(article.title)', '' }, vim.list_slice(t.lines(bufnr), 2, 3))
    t.eq('\n    return f"/articles/{slug}"', remaining and remaining.text)

    bufnr = setup_buffer()
    show_and_type('<M-Down><M-Down>')
    t.eq({ '    slug = slugify(article.title)', '    return f"/articles/{slug}"', '' }, vim.list_slice(t.lines(bufnr), 2, 4))
  end)

  it('<C-]> dismisses without changing the buffer', function()
    local bufnr = setup_buffer()
    local marks
    _G.__repoctx_marks = function()
      marks = #t.ghost_marks(bufnr)
    end
    show_and_type('<C-]><Cmd>lua __repoctx_marks()<CR>')
    t.eq(0, marks)
    t.eq('    slug = ', t.lines(bufnr)[2])
  end)

  it('typing the suggested text keeps the rest of the suggestion', function()
    local bufnr = setup_buffer()
    local remaining
    _G.__repoctx_remaining = function()
      require('repoctx').on_change(bufnr)
      remaining = ghost.get(bufnr)
    end
    show_and_type('slu<Cmd>lua __repoctx_remaining()<CR>')
    t.eq('gify(article.title)\n    return f"/articles/{slug}"', remaining and remaining.text)
  end)

  it('typing something else drops the suggestion', function()
    local bufnr = setup_buffer()
    local remaining = 'unset'
    _G.__repoctx_remaining = function()
      require('repoctx').on_change(bufnr)
      remaining = ghost.get(bufnr)
    end
    show_and_type('x<Cmd>lua __repoctx_remaining()<CR>')
    t.eq(nil, remaining)
  end)

  it('leaving Insert mode dismisses the suggestion', function()
    local bufnr = setup_buffer()
    show_and_type('')
    t.eq(0, #t.ghost_marks(bufnr))
  end)

  it('accepting replaces a closing bracket the suggestion repeats', function()
    local bufnr = t.buffer({ 'print()' }, 1, 6)
    repoctx.enable_buffer(bufnr)
    _G.__repoctx_show = function()
      ghost.show(bufnr, { text = '"hi")', row = 0, col = 6, replace_end = 7 })
    end
    t.feed('0f)i<Cmd>lua __repoctx_show()<CR><Tab><Esc>')
    t.eq({ 'print("hi")' }, t.lines(bufnr))
  end)
end)
