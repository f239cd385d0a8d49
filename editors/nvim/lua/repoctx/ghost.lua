--- Ghost text: shows one suggestion per buffer with an extmark and inserts (parts of) it.
local util = require('repoctx.util')

local api = vim.api

local M = {}

M.ns = api.nvim_create_namespace('repoctx.ghost')

--- Highlight group of the ghost text and where its first line goes ('inline' or 'overlay').
M.hl_group = 'RepoctxSuggestion'
M.virt_text_pos = 'inline'

---@type table<integer, {suggestion: repoctx.Suggestion, extmark: integer}>
local shown = {}

local function resolve(bufnr)
  if bufnr == nil or bufnr == 0 then
    return api.nvim_get_current_buf()
  end
  return bufnr
end

--- Removes the ghost text of a buffer.
---@param bufnr integer
function M.clear(bufnr)
  bufnr = resolve(bufnr)
  shown[bufnr] = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Shows a suggestion at its row and column.
---@param bufnr integer
---@param suggestion repoctx.Suggestion
function M.show(bufnr, suggestion)
  bufnr = resolve(bufnr)
  M.clear(bufnr)
  if not api.nvim_buf_is_valid(bufnr) or suggestion.text == '' then
    return
  end
  local line = api.nvim_buf_get_lines(bufnr, suggestion.row, suggestion.row + 1, false)[1]
  if line == nil or suggestion.col > #line then
    return
  end
  local pos = M.virt_text_pos
  local first = util.split_lines(suggestion.text)[1]
  -- Text after the cursor that the suggestion replaces is drawn over rather than pushed right.
  if suggestion.replace_end > suggestion.col and #first >= suggestion.replace_end - suggestion.col then
    pos = 'overlay'
  end
  local opts = util.expand_tabs(util.render_chunks(suggestion.text, M.hl_group, pos), vim.bo[bufnr].tabstop)
  opts.priority = 200
  local extmark = api.nvim_buf_set_extmark(bufnr, M.ns, suggestion.row, suggestion.col, opts)
  shown[bufnr] = { suggestion = suggestion, extmark = extmark }
end

--- The suggestion shown in a buffer, if any.
---@param bufnr integer
---@return repoctx.Suggestion?
function M.get(bufnr)
  bufnr = resolve(bufnr)
  local entry = shown[bufnr]
  if not entry then
    return nil
  end
  if not api.nvim_buf_is_valid(bufnr) or not api.nvim_buf_get_extmark_by_id(bufnr, M.ns, entry.extmark, {})[1] then
    shown[bufnr] = nil
    return nil
  end
  return entry.suggestion
end

--- Inserts all of the suggestion, its next word or its next line at the cursor, moves the cursor
--- behind the inserted text and keeps showing what is left. False when nothing is shown.
---@param bufnr integer
---@param kind 'all'|'word'|'line'
---@return boolean
function M.accept(bufnr, kind)
  bufnr = resolve(bufnr)
  local suggestion = M.get(bufnr)
  if not suggestion then
    return false
  end
  local accepted, remaining = util.take(suggestion.text, kind)
  if accepted == '' then
    return false
  end
  M.clear(bufnr)
  -- Only the last part of a suggestion replaces text after the cursor.
  local end_col = remaining == '' and suggestion.replace_end or suggestion.col
  local line = api.nvim_buf_get_lines(bufnr, suggestion.row, suggestion.row + 1, false)[1] or ''
  end_col = math.min(end_col, #line)
  api.nvim_buf_set_text(bufnr, suggestion.row, suggestion.col, suggestion.row, end_col, util.split_lines(accepted))
  local row, col = util.end_position(suggestion.row, suggestion.col, accepted)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    win = vim.fn.bufwinid(bufnr)
  end
  if win ~= -1 then
    api.nvim_win_set_cursor(win, { row + 1, col })
  end
  if remaining ~= '' then
    M.show(bufnr, {
      text = remaining,
      row = row,
      col = col,
      replace_end = col + (suggestion.replace_end - suggestion.col),
    })
  end
  return true
end

return M
