--- repoctx for Neovim: starts `repoctx lsp` for buffers inside git repositories and shows its
--- inline completions as ghost text; tells the server where the cursor rests (repoctx.warm).
---
---   require('repoctx').setup({
---     cmd = { 'repoctx', 'lsp' },
---     init_options = { engine = { kind = 'http', endpoint = '...', apiKey = '...' } },
---   })
local util = require('repoctx.util')
local ghost = require('repoctx.ghost')
local warm = require('repoctx.warm')
local context_view = require('repoctx.context_view')

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

local METHOD_INLINE = 'textDocument/inlineCompletion'
local METHOD_STATUS = 'repoctx/status'
local TRIGGER_INVOKED = 1
local TRIGGER_AUTOMATIC = 2
local REQUEST_CANCELLED = -32800
local SERVER_CANCELLED = -32802
local CONTENT_MODIFIED = -32801

---@class repoctx.Keymaps
---@field accept string|false
---@field accept_word string|false
---@field accept_line string|false
---@field dismiss string|false

---@class repoctx.Config
---@field cmd string[]|fun(dispatchers: table): table|nil command that starts the server; nil: $REPOCTX_CMD or `repoctx`, with `lsp`
---@field init_options table repoctx configuration (engine, assembly, completion, workspace sections)
---@field debounce_ms integer wait after a keystroke before asking the server
---@field keymaps repoctx.Keymaps insert-mode keys; false disables one
---@field filetypes string[] filetypes to attach to
---@field root_markers string[] files or directories that mark the repository root
---@field auto_trigger boolean ask for suggestions while typing (else only with trigger())
---@field max_lines integer|nil longest suggestion shown, in lines (nil: as the server sends it)
---@field hl_group string highlight group of the ghost text
---@field virt_text_pos 'inline'|'overlay' how the first line of a suggestion is drawn
---@field builtin boolean|'auto' use vim.lsp.inline_completion where it exists (Neovim 0.12+)
local defaults = {
  cmd = nil,
  init_options = {},
  debounce_ms = 75,
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    dismiss = '<C-]>',
  },
  filetypes = {
    'python',
    'typescript',
    'typescriptreact',
    'javascript',
    'javascriptreact',
    'java',
    'cs',
    'go',
    'rust',
  },
  root_markers = { '.git' },
  auto_trigger = true,
  max_lines = nil,
  hl_group = 'RepoctxSuggestion',
  virt_text_pos = 'inline',
  builtin = 'auto',
}

---@type repoctx.Config
M.config = vim.deepcopy(defaults)

--- What the plugin knows, for :checkhealth and statuslines.
M.state = {
  did_setup = false,
  ---@type table<integer, table> last repoctx/status params per client id
  status = {},
  ---@type string?
  last_error = nil,
  ---@type string?
  last_skip = nil,
  ---@type table<integer, {client_id: integer, request_id: integer, seq: integer}>
  pending = {},
  ---@type table<integer, {row: integer, col: integer, uri: string, time: number}>
  last_request = {},
  ---@type table<integer, boolean> buffers whose keymaps and autocmds are set
  attached = {},
  seq = 0,
}

local timers = {} ---@type table<integer, uv.uv_timer_t>
local augroup = api.nvim_create_augroup('repoctx', { clear = true })

local function log_error(message)
  M.state.last_error = message
  vim.lsp.log.warn('repoctx: ' .. message)
end

--- Whether Neovim's own inline completion (0.12+) is used instead of this plugin's renderer.
---@return boolean
function M.uses_builtin()
  local builtin = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  if M.config.builtin == 'auto' then
    return builtin
  end
  return M.config.builtin == true and builtin
end

--- The command that starts the server.
---@return string[]|fun(dispatchers: table): table
function M.resolve_cmd()
  local cmd = M.config.cmd
  if type(cmd) == 'function' then
    return cmd
  end
  if type(cmd) == 'string' then
    return { cmd, 'lsp' }
  end
  if type(cmd) == 'table' and #cmd > 0 then
    return cmd
  end
  local env = vim.env.REPOCTX_CMD
  if env and env ~= '' then
    return { env, 'lsp' }
  end
  return { 'repoctx', 'lsp' }
end

--- What to tell a user whose server command cannot be found.
---@param program string
---@return string
function M.missing_server_message(program)
  return ('repoctx: the server command "%s" was not found. Install repoctx with its model (in a checkout of '
    .. "repoctx: python3 -m venv .venv && .venv/bin/pip install -e '.[model]') and give its path: "
    .. "require('repoctx').setup({ cmd = { '/path/to/repoctx/.venv/bin/repoctx', 'lsp' } }) or $REPOCTX_CMD. "
    .. 'See :checkhealth repoctx'):format(program)
end

--- The repoctx client attached to a buffer.
---@param bufnr? integer
---@return vim.lsp.Client?
function M.get_client(bufnr)
  bufnr = bufnr == nil and api.nvim_get_current_buf() or bufnr == 0 and api.nvim_get_current_buf() or bufnr
  return vim.lsp.get_clients({ bufnr = bufnr, name = 'repoctx' })[1]
end

-- ---- requests --------------------------------------------------------------------------------

local function cancel_pending(bufnr)
  local pending = M.state.pending[bufnr]
  M.state.pending[bufnr] = nil
  if pending then
    local client = vim.lsp.get_client_by_id(pending.client_id)
    if client and pending.request_id then
      client:cancel_request(pending.request_id)
    end
  end
end

local function stop_timer(bufnr)
  local timer = timers[bufnr]
  if timer then
    timers[bufnr] = nil
    timer:stop()
    if not timer:is_closing() then
      timer:close()
    end
  end
end

local function window_of(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) == bufnr then
    return win
  end
  return nil
end

local function in_insert_mode()
  local mode = api.nvim_get_mode().mode
  return mode:sub(1, 1) == 'i'
end

--- Handles the answer to an inline completion request made at (row, col) of `bufnr`.
local function on_inline_result(bufnr, seq, tick, row, col, client, err, result)
  local pending = M.state.pending[bufnr]
  if not pending or pending.seq ~= seq then
    return -- a newer request replaced this one
  end
  M.state.pending[bufnr] = nil
  if err then
    if err.code ~= REQUEST_CANCELLED and err.code ~= SERVER_CANCELLED and err.code ~= CONTENT_MODIFIED then
      log_error(('%s failed: %s'):format(METHOD_INLINE, err.message or vim.inspect(err)))
    end
    return
  end
  if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick or not in_insert_mode() then
    return
  end
  local win = window_of(bufnr)
  if not win then
    return
  end
  local cursor = api.nvim_win_get_cursor(win)
  if cursor[1] - 1 ~= row or cursor[2] ~= col then
    return
  end
  local items = type(result) == 'table' and (result.items or result) or {}
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local ctx = {
    row = row,
    col = col,
    line = line,
    to_byte = function(_, character)
      return vim.str_byteindex(line, client.offset_encoding or 'utf-16', character, false)
    end,
  }
  for _, item in ipairs(items) do
    local suggestion = util.suggestion_from_item(item, ctx, M.config.max_lines)
    if suggestion then
      ghost.show(bufnr, suggestion)
      return
    end
  end
end

--- Asks the server for a suggestion at the cursor of `bufnr` (which must be in the current window).
---@param bufnr? integer
---@param trigger_kind? integer 1 invoked, 2 automatic
---@return boolean sent
function M.request(bufnr, trigger_kind)
  bufnr = bufnr or api.nvim_get_current_buf()
  stop_timer(bufnr)
  cancel_pending(bufnr)
  local client = M.get_client(bufnr)
  local win = window_of(bufnr)
  if not client or not win then
    return false
  end
  if not (client.server_capabilities or {}).inlineCompletionProvider then
    M.state.last_skip = 'the server does not advertise inlineCompletionProvider'
    return false
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = trigger_kind or TRIGGER_AUTOMATIC }
  local cursor = api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local tick = api.nvim_buf_get_changedtick(bufnr)
  M.state.seq = M.state.seq + 1
  local seq = M.state.seq
  M.state.last_request[bufnr] = {
    row = row,
    col = col,
    uri = params.textDocument.uri,
    position = params.position,
    time = uv.now(),
  }
  M.state.pending[bufnr] = { client_id = client.id, seq = seq }
  local ok, request_id = client:request(METHOD_INLINE, params, function(err, result)
    on_inline_result(bufnr, seq, tick, row, col, client, err, result)
  end, bufnr)
  if not ok then
    M.state.pending[bufnr] = nil
    log_error('the server is not running')
    return false
  end
  local pending = M.state.pending[bufnr]
  if pending and pending.seq == seq then
    pending.request_id = request_id
  end
  return true
end

--- Asks for a suggestion after `debounce_ms`, restarting the wait on every call.
---@param bufnr integer
function M.schedule_request(bufnr)
  stop_timer(bufnr)
  cancel_pending(bufnr)
  local timer = uv.new_timer()
  if not timer then
    return
  end
  timers[bufnr] = timer
  timer:start(
    math.max(0, M.config.debounce_ms or 0),
    0,
    vim.schedule_wrap(function()
      if timers[bufnr] ~= timer then
        return
      end
      stop_timer(bufnr)
      if api.nvim_buf_is_valid(bufnr) and in_insert_mode() and api.nvim_get_current_buf() == bufnr then
        M.request(bufnr, TRIGGER_AUTOMATIC)
      end
    end)
  )
end

--- Called on TextChangedI and CursorMovedI: keeps a suggestion the user is typing along with,
--- otherwise drops it and asks again after the debounce.
---@param bufnr integer
function M.on_change(bufnr)
  local win = window_of(bufnr)
  if not win then
    return
  end
  local cursor = api.nvim_win_get_cursor(win)
  local row, col = cursor[1] - 1, cursor[2]
  local current = ghost.get(bufnr)
  if current then
    if current.row == row and current.col == col then
      return -- nothing moved (e.g. CursorMovedI right after TextChangedI)
    end
    local lines = row >= current.row and api.nvim_buf_get_lines(bufnr, current.row, row + 1, false) or {}
    local rest = #lines > 0 and util.advance(current, row, col, lines) or nil
    if rest then
      ghost.show(bufnr, rest)
      return
    end
    ghost.clear(bufnr)
  else
    local last = M.state.last_request[bufnr]
    local pending = M.state.pending[bufnr]
    if (pending or timers[bufnr]) and last and last.row == row and last.col == col then
      return -- already asked about this position
    end
  end
  if M.config.auto_trigger then
    M.schedule_request(bufnr)
  end
end

-- ---- user actions ----------------------------------------------------------------------------

--- Whether a suggestion is shown in the current buffer.
---@return boolean
function M.is_visible()
  return ghost.get(api.nvim_get_current_buf()) ~= nil
end

--- Accepts all of the shown suggestion, its next word or its next line. Returns false when none
--- is shown. Changes the buffer, so call it from a <Cmd> mapping, not from an expr mapping.
---@param kind? 'all'|'word'|'line'
---@return boolean
function M.accept(kind)
  local bufnr = api.nvim_get_current_buf()
  stop_timer(bufnr)
  cancel_pending(bufnr)
  return ghost.accept(bufnr, kind or 'all')
end

--- Hides the suggestion and cancels the request in flight.
---@param bufnr? integer
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  stop_timer(bufnr)
  cancel_pending(bufnr)
  ghost.clear(bufnr)
end

--- Asks for a suggestion now (trigger kind "invoked").
function M.trigger()
  local bufnr = api.nvim_get_current_buf()
  if M.uses_builtin() then
    return vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
  ghost.clear(bufnr)
  return M.request(bufnr, TRIGGER_INVOKED)
end

local ACTIONS = {
  accept = { kind = 'all', desc = 'repoctx: accept suggestion' },
  accept_word = { kind = 'word', desc = 'repoctx: accept next word of suggestion' },
  accept_line = { kind = 'line', desc = 'repoctx: accept next line of suggestion' },
  dismiss = { desc = 'repoctx: dismiss suggestion' },
}

--- The keys an insert-mode mapping returns: the action when a suggestion is shown, else the
--- key itself (so <Tab> still inserts a tab).
---@param action string
---@param lhs string
---@return string
function M._keymap_rhs(action, lhs)
  if M.uses_builtin() then
    if action == 'accept' then
      local ok, accepted = pcall(vim.lsp.inline_completion.get)
      if ok and accepted then
        return ''
      end
    end
    return lhs
  end
  if not M.is_visible() then
    return lhs
  end
  if action == 'dismiss' then
    return '<Cmd>lua require("repoctx").dismiss()<CR>'
  end
  return ('<Cmd>lua require("repoctx").accept(%q)<CR>'):format(ACTIONS[action].kind)
end

--- Sets the insert-mode keymaps of a buffer.
---@param bufnr integer
function M.set_keymaps(bufnr)
  for action, spec in pairs(ACTIONS) do
    local lhs = M.config.keymaps and M.config.keymaps[action]
    if lhs then
      vim.keymap.set('i', lhs, function()
        return M._keymap_rhs(action, lhs)
      end, { buffer = bufnr, expr = true, replace_keycodes = true, silent = true, desc = spec.desc })
    end
  end
end

--- Starts following a buffer with the custom renderer: autocmds and keymaps.
---@param bufnr integer
function M.enable_buffer(bufnr)
  api.nvim_clear_autocmds({ group = augroup, buffer = bufnr })
  api.nvim_create_autocmd({ 'TextChangedI', 'CursorMovedI' }, {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      M.on_change(args.buf)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      M.dismiss(args.buf)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload' }, {
    group = augroup,
    buffer = bufnr,
    callback = function(args)
      M.dismiss(args.buf)
      M.state.last_request[args.buf] = nil
      M.state.attached[args.buf] = nil
    end,
  })
  M.set_keymaps(bufnr)
  M.state.attached[bufnr] = true
end

-- ---- the server ------------------------------------------------------------------------------

local function on_status(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  local was_ready = (M.state.status[ctx.client_id] or {}).state == 'ready'
  M.state.status[ctx.client_id] = params
  if params.state == 'error' and params.message then
    log_error(tostring(params.message))
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if params.state == 'ready' and not was_ready and client then
    warm.refresh(client) -- the server can warm up from now on
  end
  api.nvim_exec_autocmds('User', { pattern = 'RepoctxStatus', modeline = false, data = params })
  vim.cmd.redrawstatus({ bang = true, mods = { emsg_silent = true } })
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion or { dynamicRegistration = false }
  return caps
end

--- The repoctx configuration sent to the server (a JSON object even when empty).
---@return table
function M.server_settings()
  local options = M.config.init_options
  if type(options) ~= 'table' or next(options) == nil then
    return vim.empty_dict()
  end
  return options
end

--- Starts (or reuses) the server for a buffer. Does nothing outside a repository.
---@param bufnr? integer
---@return integer? client_id
function M.attach(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if not api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local name = api.nvim_buf_get_name(bufnr)
  if name == '' then
    return nil
  end
  local root = vim.fs.root(bufnr, M.config.root_markers)
  if not root then
    M.state.last_skip = ('%s is not inside a repository (no %s above it)'):format(
      vim.fn.fnamemodify(name, ':~:.'),
      table.concat(M.config.root_markers, ', ')
    )
    return nil
  end
  local cmd = M.resolve_cmd()
  if type(cmd) == 'table' and vim.fn.executable(cmd[1]) ~= 1 then
    local message = M.missing_server_message(cmd[1])
    if M.state.last_error ~= message then -- once, not for every buffer that opens
      -- A warning: an error echoed inside the FileType autocmd is shown as a Lua traceback, and a
      -- scheduled one may wait for the first key press at start-up.
      vim.notify(message, vim.log.levels.WARN)
    end
    M.state.last_error = message
    return nil
  end
  local builtin = M.uses_builtin()
  local settings = M.server_settings()
  return vim.lsp.start({
    name = 'repoctx',
    cmd = cmd,
    root_dir = root,
    init_options = settings,
    settings = { repoctx = settings },
    capabilities = capabilities(),
    handlers = { [METHOD_STATUS] = on_status },
    on_attach = function(_, attached)
      if builtin then
        vim.lsp.inline_completion.enable(true, { bufnr = attached })
        M.set_keymaps(attached)
        M.state.attached[attached] = true
      else
        M.enable_buffer(attached)
      end
      warm.enable(attached, M.get_client)
    end,
    on_exit = function(code, signal, client_id)
      M.state.status[client_id] = nil
      if code ~= 0 and signal ~= 15 then
        log_error(('the server exited with code %d (signal %d); its error is in :LspLog'):format(code, signal or 0))
      end
    end,
  }, { bufnr = bufnr })
end

--- Sends new repoctx settings to the running servers (merged into `init_options`).
---@param settings table e.g. { completion = { maxLines = 4 } }
function M.update_settings(settings)
  M.config.init_options = vim.tbl_deep_extend('force', M.config.init_options or {}, settings or {})
  for _, client in ipairs(vim.lsp.get_clients({ name = 'repoctx' })) do
    client.settings = { repoctx = M.server_settings() }
    client.config.settings = client.settings
    client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  end
end

--- Stops the servers and starts them again for the buffers they served.
function M.restart()
  local buffers = {}
  local clients = vim.lsp.get_clients({ name = 'repoctx' })
  for _, client in ipairs(clients) do
    for bufnr in pairs(client.attached_buffers) do
      buffers[#buffers + 1] = bufnr
      M.dismiss(bufnr)
    end
    client:stop()
  end
  local deadline = uv.now() + 5000
  local function again()
    local stopped = vim.iter(clients):all(function(client)
      return client:is_stopped()
    end)
    if not stopped and uv.now() < deadline then
      vim.defer_fn(again, 50)
      return
    end
    for _, client in ipairs(clients) do
      if not client:is_stopped() then
        client:stop(true)
      end
    end
    for _, bufnr in ipairs(buffers) do
      if api.nvim_buf_is_valid(bufnr) then
        M.attach(bufnr)
      end
    end
  end
  again()
end

-- ---- context view and status ---------------------------------------------------------------

--- Shows the context the server assembles at the last completion of this buffer (or the
--- cursor) in a scratch split. `callback(bufnr_or_nil, err)` is called when done.
---@param callback? fun(buf: integer?, err: string?)
function M.show_context(callback)
  callback = callback or function() end
  local bufnr = api.nvim_get_current_buf()
  local client = M.get_client(bufnr)
  if not client then
    local message = 'repoctx: no server attached to this buffer (see :checkhealth repoctx)'
    vim.notify(message, vim.log.levels.WARN)
    return callback(nil, message)
  end
  local last = M.state.last_request[bufnr]
  local params
  if last then
    params = { textDocument = { uri = last.uri }, position = last.position }
  else
    local p = vim.lsp.util.make_position_params(0, client.offset_encoding)
    params = { textDocument = p.textDocument, position = p.position }
  end
  local file = vim.fn.fnamemodify(api.nvim_buf_get_name(bufnr), ':~:.')
  context_view.request(client, bufnr, params, file, function(buf, err)
    if err then
      log_error(err)
    end
    callback(buf, err)
  end)
end

--- The last `repoctx/status` of the server of a buffer (nil before the first one).
---@param bufnr? integer
---@return table?
function M.status(bufnr)
  local client = M.get_client(bufnr)
  return client and M.state.status[client.id] or nil
end

--- Status text for a statusline ('' when no server serves the current buffer).
---@return string
function M.statusline()
  local client = M.get_client(0)
  if not client then
    return ''
  end
  return util.format_status(M.state.status[client.id])
end

-- ---- setup -----------------------------------------------------------------------------------

---@param opts? repoctx.Config
function M.setup(opts)
  if vim.fn.has('nvim-0.11') ~= 1 then
    vim.notify('repoctx needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  opts = opts or {}
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts)
  if opts.filetypes then
    M.config.filetypes = opts.filetypes -- lists replace, they are not merged
  end
  if opts.root_markers then
    M.config.root_markers = opts.root_markers
  end
  if opts.cmd then
    M.config.cmd = opts.cmd
  end
  ghost.hl_group = M.config.hl_group
  ghost.virt_text_pos = M.config.virt_text_pos
  api.nvim_set_hl(0, 'RepoctxSuggestion', { link = 'Comment', default = true })
  M.state.did_setup = true

  api.nvim_clear_autocmds({ group = augroup })
  api.nvim_create_autocmd('FileType', {
    group = augroup,
    pattern = M.config.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  api.nvim_create_autocmd('ColorScheme', {
    group = augroup,
    callback = function()
      api.nvim_set_hl(0, 'RepoctxSuggestion', { link = 'Comment', default = true })
    end,
  })
  local wanted = {}
  for _, ft in ipairs(M.config.filetypes) do
    wanted[ft] = true
  end
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and wanted[vim.bo[bufnr].filetype] then
      M.attach(bufnr)
    end
  end
end

return M
