-- Gatehouse passdb for Dovecot 2.3 (driver = lua, blocking = yes): asks Gatehouse whether a
-- password opens IMAP, POP3 or submission for a user, with
--   POST $GATEHOUSE_URL/v1/mail/authenticate {"user","password","service","client_ip"}
-- and an API key with the `mail` scope. Gatehouse's answer decides:
--   200 ok                  PASSDB_RESULT_OK: an app password of this two-step user for the service
--   200 use_primary         PASSDB_RESULT_NEXT: two-step is off; the next passdb checks the
--                           primary password
--   401 denied              PASSDB_RESULT_PASSWORD_MISMATCH: two-step is on and this is not one
--                           of the user's app passwords for the service (the primary password
--                           included); the passdb's result_failure = return-fail ends the login
--   429 rate_limited, 400   PASSDB_RESULT_PASSWORD_MISMATCH, answered after auth_failure_delay
--   anything else           PASSDB_RESULT_INTERNAL_FAILURE (a temporary failure for the client):
--                           Gatehouse unreachable, too slow, 5xx, or refusing the mail key. Never a
--                           fall-through to the primary password.
--
-- Settings come from the environment (dovecot.conf's import_environment):
--   GATEHOUSE_URL            e.g. http://127.0.0.1:8080 (no trailing slash needed)
--   GATEHOUSE_MAIL_KEY_FILE  a file holding the `mail` key's secret; read at every check
--   GATEHOUSE_TIMEOUT_MSECS  the whole request's limit, connection included (default 5000)
--
-- The password goes into the request body only: it is never logged, and neither is the key.

local SERVICES = { imap = "imap", pop3 = "pop3", submission = "smtp", smtp = "smtp" }

local client = nil

local function setting(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return nil
  end
  return value
end

local function timeout_msecs()
  local value = tonumber(setting("GATEHOUSE_TIMEOUT_MSECS") or "5000")
  if value == nil or value < 1 then
    return 5000
  end
  return math.floor(value)
end

-- One HTTP client per auth-worker process, so consecutive checks reuse its connection.
local function http_client()
  if client == nil then
    local limit = timeout_msecs()
    client = dovecot.http.client({
      request_timeout_msecs = limit,
      request_absolute_timeout_msecs = limit,
      connect_timeout_msecs = limit,
      max_attempts = 1,
      max_idle_time_msecs = 10000,
      user_agent = "dovecot-gatehouse-passdb",
    })
  end
  return client
end

local function read_key()
  local path = setting("GATEHOUSE_MAIL_KEY_FILE")
  if path == nil then
    return nil, "GATEHOUSE_MAIL_KEY_FILE is not set (dovecot.conf import_environment)"
  end
  local file = io.open(path, "r")
  if file == nil then
    return nil, "cannot read the Gatehouse mail key file " .. path
  end
  local line = file:read("*l") or ""
  file:close()
  local key = line:match("^%s*(.-)%s*$")
  if key == "" then
    return nil, "the Gatehouse mail key file " .. path .. " is empty"
  end
  return key
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(value)
  local escaped = value:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

-- The string member `name` of a flat JSON object from Gatehouse.
local function member(payload, name)
  return payload:match('"' .. name .. '"%s*:%s*"([%w_]+)"')
end

function auth_password_verify(req, password)
  local service = SERVICES[req.service]
  if service == nil then
    req:log_info("gatehouse: service " .. tostring(req.service) .. " is not imap, pop3 or submission: refused")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  end
  local base = setting("GATEHOUSE_URL")
  if base == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "GATEHOUSE_URL is not set (dovecot.conf import_environment)"
  end
  local key, problem = read_key()
  if key == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, problem
  end

  local body = '{"user":' .. json_string(req.user) .. ',"password":' .. json_string(password)
    .. ',"service":' .. json_string(service)
  local ip = req.rip
  if ip ~= nil and ip ~= "" then
    body = body .. ',"client_ip":' .. json_string(ip)
  end
  body = body .. "}"

  local request = http_client():request({ url = base:gsub("/+$", "") .. "/v1/mail/authenticate", method = "POST" })
  request:add_header("Authorization", "Bearer " .. key)
  request:add_header("Content-Type", "application/json")
  request:set_payload(body)
  local response = request:submit()
  local status = response:status()
  local payload = response:payload() or ""

  if status == 200 then
    local result = member(payload, "result")
    if result == "ok" then
      return dovecot.auth.PASSDB_RESULT_OK, ""
    elseif result == "use_primary" then
      return dovecot.auth.PASSDB_RESULT_NEXT, ""
    end
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "gatehouse: unexpected answer to mail/authenticate (200, result " .. tostring(result) .. ")"
  elseif status == 401 and member(payload, "code") == "denied" then
    req:log_info("gatehouse: denied (not an app password of this user for " .. service .. ")")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  elseif status == 429 then
    req:log_warning("gatehouse: rate limited, retry after " .. (response:header("Retry-After") or "?") .. " s")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  elseif status == 400 then
    req:log_info("gatehouse: request refused (" .. tostring(member(payload, "code")) .. ")")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  elseif status >= 9000 then
    -- Dovecot's HTTP client reports its own failures (connect, timeout) as 9000-range statuses.
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "gatehouse: unreachable: " .. tostring(response:reason())
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "gatehouse: mail/authenticate answered " .. status
    .. " (" .. tostring(member(payload, "code")) .. ")"
end

function script_init()
  return 0
end

function script_deinit()
end
