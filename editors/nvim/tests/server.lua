-- What the specs that talk to a server share: a fresh repository, a child Neovim editing it
-- with the client attached, and the fake server's message log.
--
-- By default the server is editors/testing/fake_repoctx.py (canned answers, no model). With
-- REPOCTX_NVIM_SERVER=/path/to/repoctx the same cases run against the real `repoctx lsp`;
-- REPOCTX_NVIM_INIT_OPTIONS (JSON) and REPOCTX_NVIM_TIMEOUT_MS tune that run.
local Child = require('child')

local M = {}

local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
local fake = vim.fn.fnamemodify(here .. '/../../testing/fake_repoctx.py', ':p')
M.real = vim.env.REPOCTX_NVIM_SERVER ~= nil and vim.env.REPOCTX_NVIM_SERVER ~= ''
M.timeout = tonumber(vim.env.REPOCTX_NVIM_TIMEOUT_MS) or (M.real and 300000 or 10000)

local FILES = {
  ['pkg/__init__.py'] = '',
  ['pkg/util.py'] = table.concat({
    'import re',
    '',
    '',
    'def slugify(title: str, separator: str = "-") -> str:',
    '    words = re.findall(r"[a-z0-9]+", title.lower())',
    '    return separator.join(words)',
    '',
  }, '\n'),
  ['pkg/main.py'] = table.concat({
    'from pkg.util import slugify',
    '',
    '',
    'def article_url(title: str) -> str:',
    '    slug =',
    '',
  }, '\n'),
}

local function python()
  for _, name in ipairs({ 'python3', 'python' }) do
    if vim.fn.executable(name) == 1 then
      return vim.fn.exepath(name)
    end
  end
end

function M.make_repo()
  local root = vim.fn.tempname()
  for path, text in pairs(FILES) do
    vim.fn.mkdir(vim.fs.dirname(root .. '/' .. path), 'p')
    vim.fn.writefile(vim.split(text, '\n', { plain = true }), root .. '/' .. path, 'b')
  end
  local git = { 'git', '-c', 'user.name=repoctx test', '-c', 'user.email=test@example.invalid' }
  for _, args in ipairs({ { 'init', '-q' }, { 'add', '.' }, { 'commit', '-q', '-m', 'initial' } }) do
    local result = vim.system(vim.list_extend(vim.deepcopy(git), args), { cwd = root }):wait()
    assert(result.code == 0, 'git ' .. args[1] .. ' failed: ' .. (result.stderr or ''))
  end
  return root
end

function M.requirements()
  if vim.fn.executable('git') ~= 1 then
    pending('git is not installed')
  end
  if not M.real and not python() then
    pending('python3 is needed for the fake server')
  end
end

--- A child Neovim editing pkg/main.py of a fresh repository, attached to the server.
function M.session(env, setup_extra)
  M.requirements()
  local root = M.make_repo()
  local log = vim.fn.tempname()
  local child = Child.start({ cwd = root, env = vim.tbl_extend('force', { FAKE_REPOCTX_LOG = log }, env or {}) })
  local cmd = M.real and { vim.env.REPOCTX_NVIM_SERVER, 'lsp' } or { python(), fake, 'lsp' }
  local init_options = vim.env.REPOCTX_NVIM_INIT_OPTIONS and vim.json.decode(vim.env.REPOCTX_NVIM_INIT_OPTIONS) or vim.empty_dict()
  local ok, err = pcall(function()
    child:lua([[
      local cmd, init_options, extra = ...
      require('repoctx').setup(vim.tbl_extend('force', { cmd = cmd, init_options = init_options, debounce_ms = 20 }, extra))
      vim.cmd.edit('pkg/main.py')
    ]], cmd, init_options, setup_extra or vim.empty_dict())
    child:wait([[(function()
      local client = vim.lsp.get_clients({ name = 'repoctx', bufnr = 0 })[1]
      return client ~= nil and client.initialized and require('repoctx').state.attached[vim.api.nvim_get_current_buf()]
    end)()]], M.timeout, 'the repoctx client to attach')
  end)
  if not ok then
    child:stop()
    error(err, 0)
  end
  return child, root, log
end

function M.log_entries(log)
  local entries = {}
  if vim.fn.filereadable(log) == 1 then
    for _, line in ipairs(vim.fn.readfile(log)) do
      entries[#entries + 1] = vim.json.decode(line)
    end
  end
  return entries
end

return M
