-- A second Neovim, driven over RPC, so that keys go through its real main loop (autocmds,
-- timers, LSP traffic) exactly as when a person types.
local M = {}
M.__index = M

local plugin_root = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')

--- Starts `nvim --embed --headless -u NONE` with this plugin on 'runtimepath' in `cwd`.
---@param opts {cwd: string, env?: table<string, string>}
function M.start(opts)
  local env = vim.tbl_extend('force', { NVIM_LOG_FILE = vim.fn.tempname() }, opts.env or {})
  local chan = vim.fn.jobstart({
    vim.v.progpath, '--embed', '--headless', '-u', 'NONE', '-i', 'NONE', '-n',
    '--cmd', 'set runtimepath^=' .. vim.fn.fnameescape(plugin_root),
    '--cmd', 'filetype on',
    '-c', 'runtime plugin/repoctx.lua',
  }, { rpc = true, cwd = opts.cwd, env = env })
  assert(chan > 0, 'could not start nvim')
  return setmetatable({ chan = chan }, M)
end

--- Runs Lua in the child; `...` are its arguments.
function M:lua(code, ...)
  return vim.rpcrequest(self.chan, 'nvim_exec_lua', code, { ... })
end

--- Sends keys as if typed (asynchronous, like a person typing).
function M:input(keys)
  vim.rpcrequest(self.chan, 'nvim_input', keys)
end

--- Waits until `code` (a Lua expression in the child) is truthy; returns its last value.
function M:wait(code, timeout_ms, what)
  local value
  local ok = vim.wait(timeout_ms or 5000, function()
    value = self:lua('return ' .. code)
    return value ~= nil and value ~= vim.NIL and value ~= false
  end, 20)
  if not ok then
    error(('timed out after %d ms waiting for %s'):format(timeout_ms or 5000, what or code), 2)
  end
  return value
end

function M:stop()
  pcall(vim.rpcrequest, self.chan, 'nvim_command', 'qall!')
  vim.fn.jobstop(self.chan)
end

return M
