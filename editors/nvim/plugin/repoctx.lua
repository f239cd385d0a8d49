-- Commands only; everything else loads on first use and starts with require('repoctx').setup().
if vim.g.loaded_repoctx then
  return
end
vim.g.loaded_repoctx = true

vim.api.nvim_create_user_command('RepoctxContext', function()
  require('repoctx').show_context()
end, { desc = 'repoctx: show the context of the last completion in a split' })

vim.api.nvim_create_user_command('RepoctxRestart', function()
  require('repoctx').restart()
end, { desc = 'repoctx: restart the language server' })

vim.api.nvim_create_user_command('RepoctxStatus', function()
  local repoctx = require('repoctx')
  local text = repoctx.statusline()
  vim.notify(text ~= '' and text or 'repoctx: no server attached to this buffer', vim.log.levels.INFO)
end, { desc = 'repoctx: show the server status' })

vim.api.nvim_create_user_command('RepoctxTrigger', function()
  require('repoctx').trigger()
end, { desc = 'repoctx: ask for a suggestion at the cursor' })
