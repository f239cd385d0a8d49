-- Runs the repoctx Neovim tests:  nvim --headless -u NONE -l editors/nvim/tests/run.lua [pattern]
-- Each tests/*_spec.lua returns nothing and registers cases with describe()/it() (globals set
-- here). Exits non-zero when a case fails.
local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
local plugin_root = vim.fs.dirname(here)
vim.opt.runtimepath:prepend(plugin_root)
vim.o.showmode = false
vim.o.more = false
package.path = here .. '/?.lua;' .. package.path

local filter = _G.arg and _G.arg[1]
local cases = {}
local prefix = {}

function _G.describe(name, body)
  prefix[#prefix + 1] = name
  body()
  prefix[#prefix] = nil
end

function _G.it(name, body)
  cases[#cases + 1] = { name = table.concat(prefix, ' > ') .. ' > ' .. name, body = body }
end

--- Marks the case as skipped (with a reason) when called inside it().
function _G.pending(reason)
  error({ skip = reason }, 0)
end

local specs = vim.fn.glob(here .. '/*_spec.lua', false, true)
table.sort(specs)
for _, spec in ipairs(specs) do
  if not filter or spec:find(filter, 1, true) then
    prefix = { vim.fn.fnamemodify(spec, ':t:r') }
    dofile(spec)
  end
end

local passed, failed, skipped = 0, 0, 0
for _, case in ipairs(cases) do
  local ok, err = xpcall(case.body, function(e)
    if type(e) == 'table' and e.skip then
      return e
    end
    return debug.traceback(tostring(e), 2)
  end)
  if ok then
    passed = passed + 1
    io.stdout:write('ok   ' .. case.name .. '\n')
  elseif type(err) == 'table' and err.skip then
    skipped = skipped + 1
    io.stdout:write('skip ' .. case.name .. ' (' .. err.skip .. ')\n')
  else
    failed = failed + 1
    io.stdout:write('FAIL ' .. case.name .. '\n' .. tostring(err):gsub('\n', '\n     ') .. '\n')
  end
  -- Each case starts from a clean editor state.
  pcall(vim.cmd, 'silent! %bwipeout!')
  pcall(vim.cmd, 'stopinsert')
end

io.stdout:write(('%d passed, %d failed, %d skipped\n'):format(passed, failed, skipped))
io.stdout:flush()
os.exit(failed == 0 and passed > 0 and 0 or 1)
