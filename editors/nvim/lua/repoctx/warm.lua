--- `repoctx/warm`: tells the server where the cursor is when a buffer gets the focus (BufEnter:
--- a file opened or switched to) and when the cursor rests (CursorHold, CursorHoldI: after
--- 'updatetime'), so that it can evaluate the prompt there in the background and the first
--- suggestion does not start from a cold engine.
local api = vim.api

local M = {}

M.METHOD = 'repoctx/warm'

local augroup = api.nvim_create_augroup('repoctx.warm', { clear = true })
---@type table<integer, string> the place last sent per buffer (line, character, changedtick)
local last = {}

--- Sends `repoctx/warm` for the cursor of `bufnr` when it is in the current window and the place
--- (or the buffer's text) changed since the last time, or when `force` is set.
---@param bufnr integer
---@param client vim.lsp.Client
---@param force? boolean
---@return boolean sent
function M.send(bufnr, client, force)
  local win = api.nvim_get_current_win()
  if not api.nvim_buf_is_valid(bufnr) or api.nvim_win_get_buf(win) ~= bufnr or client:is_stopped() then
    return false
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  local key = ('%d:%d:%d'):format(params.position.line, params.position.character, api.nvim_buf_get_changedtick(bufnr))
  if not force and last[bufnr] == key then
    return false
  end
  last[bufnr] = key
  return client:notify(M.METHOD, { textDocument = params.textDocument, position = params.position })
end

--- Follows a buffer attached to the server; `get_client(bufnr)` finds its client.
---@param bufnr integer
---@param get_client fun(bufnr: integer): vim.lsp.Client?
function M.enable(bufnr, get_client)
  api.nvim_clear_autocmds({ group = augroup, buffer = bufnr })
  local function send(args, force)
    local client = get_client(args.buf)
    if client then
      M.send(args.buf, client, force)
    end
  end
  api.nvim_create_autocmd({ 'CursorHold', 'CursorHoldI' }, { group = augroup, buffer = bufnr, callback = send })
  api.nvim_create_autocmd('BufEnter', {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      -- After the cursor went back to its place in the buffer; and even at the same place as
      -- the last time: the server may have warmed up another file since.
      vim.schedule(function()
        send(args, true)
      end)
    end,
  })
  api.nvim_create_autocmd('BufUnload', {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      last[args.buf] = nil
      api.nvim_clear_autocmds({ group = augroup, buffer = args.buf })
    end,
  })
  -- The buffer was entered before the client attached to it: tell the server now (after the
  -- didOpen that attaching sends).
  vim.schedule(function()
    send({ buf = bufnr })
  end)
end

--- Tells the servers about the current buffer again (e.g. once a server is ready to warm up).
---@param client vim.lsp.Client
function M.refresh(client)
  local bufnr = api.nvim_get_current_buf()
  if client.attached_buffers[bufnr] then
    M.send(bufnr, client, true)
  end
end

return M
