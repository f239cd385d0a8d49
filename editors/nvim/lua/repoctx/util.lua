--- Pure helpers of the repoctx client: no editor state, so they can be tested on their own.
local M = {}

--- Splits text into lines on "\n" (a "\r" before it is dropped). Always at least one line.
---@param text string
---@return string[]
function M.split_lines(text)
  local lines = {}
  for line in (text .. '\n'):gmatch('(.-)\r?\n') do
    lines[#lines + 1] = line
  end
  return lines
end

--- Keeps at most `max_lines` lines of `text` (no limit when nil or < 1).
---@param text string
---@param max_lines integer?
---@return string
function M.limit_lines(text, max_lines)
  if not max_lines or max_lines < 1 then
    return text
  end
  local lines = M.split_lines(text)
  if #lines <= max_lines then
    return text
  end
  return table.concat(lines, '\n', 1, max_lines)
end

-- A word: identifier characters, with bytes >= 0x80 (UTF-8 sequences) counted as letters.
local WORD = '[%w_\128-\255]'
local NOT_WORD = '[^%w_\128-\255%s]'

--- The part of a suggestion that "accept word" takes: leading blanks and then one word, or
--- one run of punctuation. At a line break: the break and the next line's indentation.
---@param text string
---@return string
function M.next_word(text)
  if text == '' then
    return ''
  end
  local newline = text:match('^\r?\n[ \t]*')
  if newline then
    return newline
  end
  return text:match('^[ \t]*' .. WORD .. '+')
    or text:match('^[ \t]*' .. NOT_WORD .. '+')
    or text:match('^[ \t]+')
    or text:sub(1, 1)
end

--- The part of a suggestion that "accept line" takes: the rest of the current line, or, when
--- the suggestion starts with a line break, the break and the whole next line.
---@param text string
---@return string
function M.next_line(text)
  if text == '' then
    return ''
  end
  local newline = text:match('^\r?\n')
  if newline then
    local rest = text:sub(#newline + 1)
    return newline .. (rest:match('^[^\r\n]*') or '')
  end
  return text:match('^[^\r\n]*')
end

--- Picks the part of `text` to accept for a kind: "all", "word" or "line".
---@param text string
---@param kind 'all'|'word'|'line'
---@return string accepted
---@return string remaining
function M.take(text, kind)
  local accepted
  if kind == 'word' then
    accepted = M.next_word(text)
  elseif kind == 'line' then
    accepted = M.next_line(text)
  else
    accepted = text
  end
  return accepted, text:sub(#accepted + 1)
end

--- Extmark options that show `text` as ghost text at the cursor: the first line as
--- `virt_text`, the others as `virt_lines`.
---@param text string
---@param hl_group string
---@param virt_text_pos? 'inline'|'overlay'|'eol'
---@return vim.api.keyset.set_extmark
function M.render_chunks(text, hl_group, virt_text_pos)
  local lines = M.split_lines(text)
  local opts = {
    virt_text = { { lines[1], hl_group } },
    virt_text_pos = virt_text_pos or 'inline',
    hl_mode = 'combine',
  }
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      -- Tabs are not expanded in virtual lines: show them as spaces of 'tabstop' width.
      virt_lines[#virt_lines + 1] = { { lines[i], hl_group } }
    end
    opts.virt_lines = virt_lines
  end
  return opts
end

--- Replaces leading tabs in virtual lines by spaces (virt_lines do not expand tabs).
---@param opts vim.api.keyset.set_extmark
---@param tabstop integer
---@return vim.api.keyset.set_extmark
function M.expand_tabs(opts, tabstop)
  if not opts.virt_lines then
    return opts
  end
  for _, line in ipairs(opts.virt_lines) do
    for _, chunk in ipairs(line) do
      chunk[1] = chunk[1]:gsub('\t', string.rep(' ', tabstop))
    end
  end
  return opts
end

---@class repoctx.Suggestion
---@field text string text to insert at the cursor
---@field row integer 0-based row of the cursor it belongs to
---@field col integer 0-based byte column of that cursor
---@field replace_end integer byte column on `row` up to which text after the cursor is replaced (>= col)

---@class repoctx.CursorContext
---@field row integer 0-based cursor row
---@field col integer 0-based byte column of the cursor
---@field line string text of the cursor's line
---@field to_byte? fun(row: integer, character: integer): integer LSP character -> byte column on that row

--- Turns one InlineCompletionItem into a suggestion at the cursor, or nil when it cannot be shown
--- as ghost text there (it does not start with what is typed between its range start and the
--- cursor, its range is on another line, or nothing would be inserted).
---@param item table lsp.InlineCompletionItem
---@param ctx repoctx.CursorContext
---@param max_lines? integer
---@return repoctx.Suggestion?
function M.suggestion_from_item(item, ctx, max_lines)
  if type(item) ~= 'table' then
    return nil
  end
  local text = item.insertText
  if type(text) == 'table' then
    -- A snippet: show it with its placeholders' default text and without tab stops.
    text = M.snippet_to_text(text.value or '')
  end
  if type(text) ~= 'string' then
    return nil
  end
  local replace_end = ctx.col
  local range = item.range
  if type(range) == 'table' and range.start and range['end'] then
    if range.start.line ~= ctx.row or range['end'].line ~= ctx.row then
      return nil
    end
    local to_byte = ctx.to_byte or function(_, character)
      return character
    end
    local start_col = to_byte(range.start.line, range.start.character)
    local end_col = to_byte(range['end'].line, range['end'].character)
    if start_col > ctx.col then
      return nil
    end
    local typed = ctx.line:sub(start_col + 1, ctx.col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    replace_end = math.max(ctx.col, end_col)
  end
  text = M.limit_lines(text, max_lines)
  -- Text after the cursor that the suggestion would only repeat (e.g. a closing bracket that is
  -- already there) is replaced rather than duplicated.
  if replace_end == ctx.col then
    local after = ctx.line:sub(ctx.col + 1)
    if after ~= '' and #text > #after and text:sub(-#after) == after and not text:find('\n') then
      replace_end = #ctx.line
    end
  end
  if text:match('^%s*$') then
    return nil
  end
  return { text = text, row = ctx.row, col = ctx.col, replace_end = replace_end }
end

--- Plain text of an LSP snippet: `${1:default}` -> default, `$1`/`$0` removed, `\$` -> `$`.
---@param snippet string
---@return string
function M.snippet_to_text(snippet)
  -- Escaped characters are set aside first so that `\$1` stays a literal `$1`.
  local escaped = {}
  local text = snippet:gsub('\\([$}\\])', function(char)
    escaped[#escaped + 1] = char
    return '\0' .. #escaped .. '\0'
  end)
  for _ = 1, 10 do -- nested placeholders
    local replaced
    text, replaced = text:gsub('%${%d+:([^{}]*)}', '%1')
    if replaced == 0 then
      break
    end
  end
  text = text:gsub('%${%d+|([^,|}]*)[^}]*}', '%1'):gsub('%${%d+}', ''):gsub('%$%d+', '')
  return (text:gsub('%z(%d+)%z', function(index)
    return escaped[tonumber(index)]
  end))
end

--- After the user typed or accepted text, what is left of a suggestion at the new cursor, or nil
--- when the edit does not follow the suggestion. `line` is the text of the suggestion's row now.
---@param suggestion repoctx.Suggestion
---@param row integer
---@param col integer
---@param lines string[] buffer lines from suggestion.row to row (inclusive)
---@return repoctx.Suggestion?
function M.advance(suggestion, row, col, lines)
  if row < suggestion.row or (row == suggestion.row and col < suggestion.col) then
    return nil
  end
  -- The text typed since the suggestion was made, as it is in the buffer now.
  local typed
  if row == suggestion.row then
    typed = lines[1]:sub(suggestion.col + 1, col)
  else
    local parts = { lines[1]:sub(suggestion.col + 1) }
    for i = 2, row - suggestion.row do
      parts[#parts + 1] = lines[i]
    end
    parts[#parts + 1] = lines[row - suggestion.row + 1]:sub(1, col)
    typed = table.concat(parts, '\n')
  end
  if typed == '' then
    return suggestion
  end
  if suggestion.text:sub(1, #typed) ~= typed then
    return nil
  end
  local rest = suggestion.text:sub(#typed + 1)
  if rest == '' then
    return nil
  end
  local replace_end = col
  if row == suggestion.row then
    replace_end = math.max(col, suggestion.replace_end + (col - suggestion.col))
  end
  return { text = rest, row = row, col = col, replace_end = replace_end }
end

--- Where the cursor ends after inserting `text` at (row, col): 0-based row, byte column.
---@param row integer
---@param col integer
---@param text string
---@return integer, integer
function M.end_position(row, col, text)
  local lines = M.split_lines(text)
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

-- ---- status --------------------------------------------------------------------------------

--- Short status text for a statusline, from the last `repoctx/status` params (nil: not started).
---@param status table?
---@return string
function M.format_status(status)
  if type(status) ~= 'table' then
    return 'repoctx: starting'
  end
  local state = tostring(status.state or '?')
  if state == 'indexing' then
    local done, total = tonumber(status.files_indexed), tonumber(status.files_total)
    if done and total then
      return ('repoctx: indexing %d/%d'):format(done, total)
    end
    return 'repoctx: indexing'
  elseif state == 'ready' then
    local parts = { 'repoctx' }
    if status.engine and status.engine ~= '' then
      parts[#parts + 1] = tostring(status.engine)
    end
    local ms = tonumber(status.last_latency_ms)
    if ms then
      parts[#parts + 1] = ms >= 1000 and ('%.1f s'):format(ms / 1000) or ('%d ms'):format(math.floor(ms + 0.5))
    end
    return table.concat(parts, ' · ')
  elseif state == 'error' then
    local message = status.message and status.message ~= '' and (': ' .. tostring(status.message)) or ''
    return 'repoctx: error' .. message
  end
  return 'repoctx: ' .. state
end

-- ---- context view --------------------------------------------------------------------------

local FENCE = {
  py = 'python', pyi = 'python', ts = 'typescript', tsx = 'tsx', js = 'javascript', mjs = 'javascript',
  cjs = 'javascript', jsx = 'javascript', java = 'java', cs = 'c_sharp', go = 'go', rs = 'rust',
  c = 'c', h = 'c', cpp = 'cpp', hpp = 'cpp', lua = 'lua', rb = 'ruby', sh = 'bash',
}

---@param path string
---@return string
function M.fence_language(path)
  local ext = path:match('%.([%w]+)$')
  return ext and FENCE[ext:lower()] or ''
end

local function number(value, fmt)
  if type(value) == 'number' then
    return (fmt or '%d'):format(value)
  end
  return '?'
end

--- 1-based inclusive display of a 0-based, end-exclusive line range.
---@param start_line integer
---@param end_line integer
---@return string
function M.line_range(start_line, end_line)
  local first = start_line + 1
  local last = math.max(first, end_line)
  if first == last then
    return ('line %d'):format(first)
  end
  return ('lines %d-%d'):format(first, last)
end

--- Markdown lines for a `repoctx/context` result.
---@param result table
---@param origin? {file: string, line: integer, character: integer}
---@return string[]
function M.context_lines(result, origin)
  local out = { '# repoctx context', '' }
  local snippets = type(result) == 'table' and type(result.snippets) == 'table' and result.snippets or {}
  if origin then
    out[#out + 1] = ('For `%s`, line %d, column %d.'):format(origin.file, origin.line + 1, origin.character + 1)
    out[#out + 1] = ''
  end
  out[#out + 1] = ('%d snippet%s, %s of %s tokens of budget.'):format(
    #snippets,
    #snippets == 1 and '' or 's',
    number(result.used_tokens),
    number(result.budget)
  )
  out[#out + 1] = ''
  if type(result.timings_ms) == 'table' and next(result.timings_ms) then
    local stages = vim.tbl_keys(result.timings_ms)
    table.sort(stages)
    local parts = {}
    for _, stage in ipairs(stages) do
      parts[#parts + 1] = ('%s %s ms'):format(stage, number(result.timings_ms[stage], '%.1f'))
    end
    out[#out + 1] = 'Timings: ' .. table.concat(parts, ', ') .. '.'
    out[#out + 1] = ''
  end
  if type(result.notes) == 'table' then
    local any = false
    for _, note in ipairs(result.notes) do
      if type(note) == 'string' and note ~= '' then
        out[#out + 1] = '- ' .. note:gsub('\n', ' ')
        any = true
      end
    end
    if any then
      out[#out + 1] = ''
    end
  end
  if #snippets == 0 then
    out[#out + 1] = '_No repository context was used for this position._'
    return out
  end
  for i, snippet in ipairs(snippets) do
    out[#out + 1] = ('## %d. %s, %s'):format(
      i,
      tostring(snippet.path),
      M.line_range(tonumber(snippet.start_line) or 0, tonumber(snippet.end_line) or 0)
    )
    out[#out + 1] = ''
    out[#out + 1] = ('source %s · score %s · %s tokens'):format(
      tostring(snippet.source),
      number(snippet.score, '%.3f'),
      number(snippet.tokens)
    )
    out[#out + 1] = ''
    local text = tostring(snippet.text or ''):gsub('\n$', '')
    local longest = 2
    for run in text:gmatch('`+') do
      longest = math.max(longest, #run)
    end
    local fence = string.rep('`', longest + 1)
    out[#out + 1] = fence .. M.fence_language(tostring(snippet.path))
    vim.list_extend(out, M.split_lines(text))
    out[#out + 1] = fence
    out[#out + 1] = ''
  end
  return out
end

return M
