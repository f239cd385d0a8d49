--- :checkhealth repoctx
local M = {}

function M.check()
  local health = vim.health
  health.start('repoctx')

  local version = vim.version()
  local version_text = ('%d.%d.%d'):format(version.major, version.minor, version.patch)
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. version_text)
  else
    health.error('Neovim ' .. version_text .. ' is too old', { 'repoctx needs Neovim 0.11 or newer' })
  end

  local ok, repoctx = pcall(require, 'repoctx')
  if not ok then
    health.error('require("repoctx") failed: ' .. tostring(repoctx))
    return
  end
  if repoctx.state.did_setup then
    health.ok('setup() was called')
  else
    health.warn('setup() was not called', { 'Add require("repoctx").setup({}) to your configuration' })
  end

  if repoctx.uses_builtin() then
    health.info('Suggestions are shown by vim.lsp.inline_completion (built in)')
  else
    health.info('Suggestions are shown by repoctx (extmarks)')
  end

  local cmd = repoctx.resolve_cmd()
  if type(cmd) == 'function' then
    health.info('Server command: a Lua function')
  else
    local program = cmd[1]
    if vim.fn.executable(program) == 1 then
      health.ok(('Server command found: %s (%s)'):format(table.concat(cmd, ' '), vim.fn.exepath(program)))
    else
      health.error(('Server command not found: %s'):format(program), {
        'Install repoctx (pip install -e ".[model]" in its checkout) so that `repoctx` is on PATH,',
        'or set cmd = { "/path/to/repoctx", "lsp" } in setup(), or the REPOCTX_CMD environment variable',
      })
    end
  end

  local clients = vim.lsp.get_clients({ name = 'repoctx' })
  if #clients == 0 then
    health.warn('No repoctx server is running', {
      'Open a file of a configured filetype inside a git repository',
      repoctx.state.last_skip and ('Last skipped: ' .. repoctx.state.last_skip) or nil,
    })
  end
  for _, client in ipairs(clients) do
    local names = {}
    for bufnr in pairs(client.attached_buffers) do
      names[#names + 1] = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(bufnr), ':~:.')
    end
    table.sort(names)
    health.ok(('Client %d attached (root %s) to: %s'):format(
      client.id,
      client.root_dir or '?',
      #names > 0 and table.concat(names, ', ') or 'no buffer'
    ))
    if not (client.server_capabilities or {}).inlineCompletionProvider then
      health.warn(('Client %d: the server does not advertise inlineCompletionProvider'):format(client.id))
    end
    local util = require('repoctx.util')
    health.info(('Client %d status: %s'):format(client.id, util.format_status(repoctx.state.status[client.id])))
  end

  if repoctx.state.last_error then
    health.warn('Last error: ' .. repoctx.state.last_error, { 'See :LspLog for the server log' })
  else
    health.ok('No errors')
  end
end

return M
