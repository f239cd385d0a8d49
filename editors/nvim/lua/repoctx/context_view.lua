--- The `repoctx/context` view: the context the server assembles at a place, in a scratch split
--- (`:RepoctxContext`).
local util = require('repoctx.util')

local api = vim.api

local M = {}

M.METHOD = 'repoctx/context'

local CONTEXT_BUFFER = 'repoctx://context'

--- Shows `lines` in the context buffer (reused while it exists), in a split, from the top.
---@param lines string[]
---@return integer buf
function M.show(lines)
  local buf = vim.fn.bufnr(CONTEXT_BUFFER)
  if buf == -1 or not api.nvim_buf_is_valid(buf) then
    buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(buf, CONTEXT_BUFFER)
    vim.bo[buf].bufhidden = 'wipe'
    vim.bo[buf].filetype = 'markdown'
  end
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd('botright split')
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
  else
    api.nvim_set_current_win(win)
  end
  api.nvim_win_set_cursor(win, { 1, 0 })
  return buf
end

--- Asks `client` for the context at `params` (of buffer `bufnr`, shown as `file`) and shows it;
--- `callback(buf)` when shown, `callback(nil, message)` when the request failed (notified).
---@param client vim.lsp.Client
---@param bufnr integer
---@param params table
---@param file string
---@param callback fun(buf: integer?, err: string?)
function M.request(client, bufnr, params, file, callback)
  client:request(M.METHOD, params, function(err, result)
    if err then
      local message = ('repoctx: %s failed: %s'):format(M.METHOD, err.message or vim.inspect(err))
      vim.notify(message, vim.log.levels.ERROR)
      return callback(nil, message)
    end
    local lines = util.context_lines(result or {}, {
      file = file,
      line = params.position.line,
      character = params.position.character,
    })
    callback(M.show(lines))
  end, bufnr)
end

return M
