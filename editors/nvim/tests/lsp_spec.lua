-- The client against a server over stdio, typed into a second Neovim.
--
-- By default the server is editors/testing/fake_repoctx.py (canned answers, no model). With
-- REPOCTX_NVIM_SERVER=/path/to/repoctx the same cases run against the real `repoctx lsp`;
-- REPOCTX_NVIM_INIT_OPTIONS (JSON) and REPOCTX_NVIM_TIMEOUT_MS tune that run.
local t = require('helpers')
local Child = require('child')
local server = require('server')

local real, timeout, session, log_entries = server.real, server.timeout, server.session, server.log_entries

describe('with the server', function()
  it('shows a suggestion after typing and <Tab> inserts it', function()
    local child, _, log = session()
    local ok, err = pcall(function()
      -- Wait for the end of indexing, then type a space after `slug =`.
      child:wait([[(require('repoctx').status() or {}).state == 'ready']], timeout, 'repoctx/status ready')
      child:input('5GA ')
      local text = child:wait([[(function()
        local s = require('repoctx.ghost').get(0)
        return s and s.text
      end)()]], timeout, 'ghost text')
      if not real then
        t.eq('compute_slug(value)\n    return slug', text)
      end
      local mark = child:lua([[
        local marks = vim.api.nvim_buf_get_extmarks(0, require('repoctx.ghost').ns, 0, -1, { details = true })
        return marks[1]
      ]])
      t.eq(4, mark[2], 'extmark row')
      t.eq(#'    slug = ', mark[3], 'extmark column')
      t.eq(vim.split(text, '\n', { plain = true })[1], mark[4].virt_text[1][1])

      child:input('<Tab>')
      local expected = vim.split('    slug = ' .. text, '\n', { plain = true })
      child:wait(('vim.api.nvim_buf_get_lines(0, 4, 5, false)[1] == %q'):format(expected[1]), 2000, 'accepted text')
      t.eq(expected, child:lua('return vim.api.nvim_buf_get_lines(0, 4, 4 + ..., false)', #expected))
      local cursor = child:lua('return vim.api.nvim_win_get_cursor(0)')
      t.eq({ 4 + #expected, #expected[#expected] }, cursor, 'cursor after the suggestion')
      t.eq('i', child:lua('return vim.api.nvim_get_mode().mode'), 'still in Insert mode')

      if not real then
        local requests = vim.tbl_filter(function(entry)
          return entry.method == 'textDocument/inlineCompletion'
        end, log_entries(log))
        t.truthy(#requests >= 1, 'an inline completion request')
        t.eq({ line = 4, character = 11 }, requests[1].params.position)
        t.eq(2, requests[1].params.context.triggerKind, 'automatic trigger')
      end
      t.matches('^repoctx', child:lua([[return require('repoctx').statusline()]]))
    end)
    child:stop()
    assert(ok, err)
  end)

  it('cancels the request in flight when typing goes on', function()
    if real then
      pending('needs the fake server delay')
    end
    local child, _, log = session({ FAKE_REPOCTX_DELAY_MS = '500' })
    local ok, err = pcall(function()
      child:input('5GA ')
      child:wait([[next(require('repoctx').state.pending) ~= nil]], 2000, 'a request in flight')
      child:input('x')
      vim.wait(700)
      local methods = vim.tbl_map(function(entry)
        return entry.method
      end, log_entries(log))
      t.truthy(vim.tbl_contains(methods, '$/cancelRequest'), 'a $/cancelRequest in ' .. vim.inspect(methods))
    end)
    child:stop()
    assert(ok, err)
  end)

  it(':RepoctxContext shows the context in a markdown split', function()
    local child = session()
    local ok, err = pcall(function()
      child:wait([[(require('repoctx').status() or {}).state == 'ready']], timeout, 'repoctx/status ready')
      child:lua([[vim.api.nvim_win_set_cursor(0, { 5, 10 })]])
      child:lua([[vim.cmd('RepoctxContext')]])
      child:wait([[vim.api.nvim_buf_get_name(0):match('repoctx://context') ~= nil]], timeout, 'the context split')
      local lines = child:lua([[return vim.api.nvim_buf_get_lines(0, 0, -1, false)]])
      local text = table.concat(lines, '\n')
      t.matches('^# repoctx context', text)
      t.matches('For `pkg/main%.py`, line 5', text)
      t.matches('pkg/util%.py', text)
      t.eq('markdown', child:lua('return vim.bo.filetype'))
      t.eq(2, child:lua('return #vim.api.nvim_list_wins()'), 'a split')
    end)
    child:stop()
    assert(ok, err)
  end)

  it(':checkhealth repoctx reports the attached client', function()
    local child = session()
    local ok, err = pcall(function()
      child:lua([[vim.cmd('checkhealth repoctx')]])
      local text = table.concat(child:lua([[return vim.api.nvim_buf_get_lines(0, 0, -1, false)]]), '\n')
      t.matches('OK Neovim 0%.1', text)
      t.matches('OK setup%(%) was called', text)
      t.matches('OK Server command found', text)
      t.matches('OK Client %d+ attached %(root [^)]+%) to: [^\n]*main%.py', text)
      t.matches('OK No errors', text)
    end)
    child:stop()
    assert(ok, err)
  end)

  it('sends settings changes with workspace/didChangeConfiguration', function()
    if real then
      pending('checks the fake server log')
    end
    local child, _, log = session()
    local ok, err = pcall(function()
      child:lua([[require('repoctx').update_settings({ completion = { maxLines = 1 } })]])
      child:input('5GA ')
      local text = child:wait([[(function()
        local s = require('repoctx.ghost').get(0)
        return s and s.text
      end)()]], timeout, 'ghost text')
      t.eq('compute_slug(value)', text, 'one line')
      local changes = vim.tbl_filter(function(entry)
        return entry.method == 'workspace/didChangeConfiguration'
      end, log_entries(log))
      t.eq({ repoctx = { completion = { maxLines = 1 } } }, changes[#changes] and changes[#changes].params.settings)
    end)
    child:stop()
    assert(ok, err)
  end)
end)

describe('without a server', function()
  it('says once how to install a server command that is missing', function()
    server.requirements()
    local root = server.make_repo()
    local child = Child.start({ cwd = root })
    local ok, err = pcall(function()
      child:lua([[
        _G.notes = {}
        vim.notify = function(message, level)
          table.insert(_G.notes, { message, level })
        end
        require('repoctx').setup({ cmd = { '/nonexistent/bin/repoctx', 'lsp' } })
        vim.cmd.edit('pkg/main.py')
        vim.cmd.edit('pkg/util.py')
      ]])
      child:wait('#_G.notes > 0', 5000, 'a notification')
      vim.wait(200)
      local notes = child:lua('return _G.notes')
      t.eq(1, #notes, vim.inspect(notes))
      t.matches('"/nonexistent/bin/repoctx" was not found', notes[1][1])
      t.matches("pip install %-e '%.%[model%]'", notes[1][1])
      t.matches(':checkhealth repoctx', notes[1][1])
      t.eq(vim.log.levels.WARN, notes[1][2])
      t.eq(0, child:lua([[return #vim.lsp.get_clients({ name = 'repoctx' })]]))
    end)
    child:stop()
    assert(ok, err)
  end)
end)
