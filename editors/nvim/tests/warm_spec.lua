-- `repoctx/warm`: sent when a buffer is opened or entered and when the cursor rests, and (with
-- the real server, REPOCTX_NVIM_SERVER) counted by the server as warm-ups in `repoctx/status`.
local t = require('helpers')
local server = require('server')

local timeout = server.timeout

--- Runs `body(child, log)` in a fresh session and stops the child afterwards.
local function with_session(body)
  local child, _, log = server.session()
  local ok, err = pcall(body, child, log)
  child:stop()
  assert(ok, err)
end

describe('warm-up', function()
  it('sends repoctx/warm on open, on BufEnter and when the cursor rests', function()
    if server.real then
      pending('checks the fake server log')
    end
    with_session(function(child, log)
      local function warms()
        return vim.tbl_filter(function(entry)
          return entry.method == 'repoctx/warm'
        end, server.log_entries(log))
      end
      local function wait_for(what, check)
        local found
        local ok = vim.wait(timeout, function()
          found = vim.iter(warms()):find(check)
          return found ~= nil
        end, 20)
        assert(ok, 'no repoctx/warm ' .. what .. ' in ' .. vim.inspect(warms()))
        return found
      end
      local function at(file, line, character)
        return function(entry)
          return entry.params.textDocument.uri:match(file .. '$') ~= nil
            and entry.params.position.line == line
            and entry.params.position.character == character
        end
      end

      wait_for('when pkg/main.py was opened', at('pkg/main%.py', 0, 0))
      t.eq(vim.NIL, warms()[1].id, 'a notification (no id)')
      child:lua([[vim.o.updatetime = 100]])
      child:input('4Gw') -- keys: CursorHold only follows typed keys
      wait_for('when the cursor rested (CursorHold)', at('pkg/main%.py', 3, 4))
      child:input('5GA')
      wait_for('when the cursor rested in Insert mode (CursorHoldI)', at('pkg/main%.py', 4, 10))
      child:input('<Esc>')
      child:lua([[vim.cmd.edit('pkg/util.py')]])
      wait_for('when pkg/util.py was opened', at('pkg/util%.py', 0, 0))
      local before = #warms()
      child:lua([[vim.cmd.buffer(vim.fn.bufnr('pkg/main.py'))]])
      local ok = vim.wait(timeout, function()
        local all = warms()
        return #all > before and at('pkg/main%.py', 4, 9)(all[#all]) -- where <Esc> left the cursor
      end, 20)
      assert(ok, 'no repoctx/warm when pkg/main.py was entered again: ' .. vim.inspect(warms()))
      local count = #warms()
      vim.wait(400) -- two 'updatetime's without moving: nothing new to say
      t.eq(count, #warms(), 'the same place again: ' .. vim.inspect(vim.list_slice(warms(), before)))
    end)
  end)

  it('warms the server up on open and when the cursor rests', function()
    if not server.real then
      pending('needs the real server (REPOCTX_NVIM_SERVER)')
    end
    with_session(function(child)
      child:wait([[(require('repoctx').status() or {}).state == 'ready']], timeout, 'repoctx/status ready')
      local function warmups()
        local status = child:lua([[return require('repoctx').status()]]) or {}
        return type(status.background) == 'table' and status.background.warmups or nil
      end
      local function wait_above(count, what)
        local ok = vim.wait(timeout, function()
          local now = warmups()
          return now ~= nil and now > count
        end, 50)
        assert(ok, ('background.warmups did not go above %d %s: %s'):format(count, what,
          vim.inspect(child:lua([[return require('repoctx').status()]]))))
        return warmups()
      end
      local count = wait_above(0, 'after pkg/main.py was opened')
      child:lua([[vim.o.updatetime = 100]])
      child:input('5G$') -- keys: CursorHold only follows typed keys
      count = wait_above(count, 'after the cursor rested')
      child:lua([[vim.cmd.edit('pkg/util.py')]])
      wait_above(count, 'after pkg/util.py was opened')
    end)
  end)
end)
