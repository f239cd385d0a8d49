-- Assertions for the repoctx Neovim tests.
local M = {}

function M.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%sexpected %s, got %s'):format(what and (what .. ': ') or '', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function M.truthy(value, what)
  if not value then
    error((what or 'expected a true value') .. ', got ' .. vim.inspect(value), 2)
  end
end

function M.matches(pattern, text, what)
  if type(text) ~= 'string' or not text:find(pattern) then
    error(('%s%s does not match %q'):format(what and (what .. ': ') or '', vim.inspect(text), pattern), 2)
  end
end

--- Lines of a buffer.
function M.lines(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr or 0, 0, -1, false)
end

--- A scratch buffer with `lines`, shown in the current window, cursor at (row 1-based, col 0-based).
function M.buffer(lines, row, col)
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.api.nvim_set_current_buf(bufnr)
  vim.bo[bufnr].expandtab = true
  vim.bo[bufnr].tabstop = 4
  if row then
    vim.api.nvim_win_set_cursor(0, { row, col or 0 })
  end
  return bufnr
end

--- Feeds keys as typed (mappings apply) and runs them now; `keep_insert` stays in Insert mode.
function M.feed(keys, keep_insert)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), keep_insert and 'tx!' or 'tx', false)
end

--- Extmarks of the ghost-text namespace, with details.
function M.ghost_marks(bufnr)
  local ns = require('repoctx.ghost').ns
  return vim.api.nvim_buf_get_extmarks(bufnr or 0, ns, 0, -1, { details = true })
end

--- The nvim executable running these tests.
function M.nvim()
  return vim.v.progpath
end

return M
