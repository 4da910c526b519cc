-- wrk script for every closed-loop scenario of bench/harness.py.
-- args: <token> <scenario> <lines> [<order id> | <body file>]
--   create-wide  POST /v1/orders, <lines> distinct random SKUs of 10 000, a unique Idempotency-Key
--   create-hot   POST /v1/orders, the same 3 hot SKUs in every order (a flash sale), unique keys
--   replay       POST /v1/orders, one fixed key and body per thread: the first creates, the rest replay
--   get          GET /v1/orders/<order id>
--   list         GET /v1/orders?limit=20
--   quote        POST /v1/quotes, <lines> random SKUs
--   mix          60 % get, 20 % create-wide, 10 % list, 10 % quote
--   create-file  POST /v1/orders, the body in <body file>, a unique Idempotency-Key (bench/load.py, profile.py)
--   quote-file   POST /v1/quotes, the body in <body file>
-- Prints one JSON line of results from done().
local token, scenario, lines, order_id, file_body
local counter = 0
local prefix = ""
local threads = {}
local WIDE = 10000

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  scenario = args[2]
  lines = tonumber(args[3])
  order_id = args[4]
  if scenario == "create-file" or scenario == "quote-file" then
    local f = assert(io.open(args[4], "rb"))
    file_body = f:read("*a")
    f:close()
  end
  math.randomseed(os.time() * 1000 + id)
  prefix = tostring(id) .. "-" .. tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
end

local function wide_items(n)
  local seen, items = {}, {}
  while #items < n do
    local k = math.random(1, WIDE)
    if not seen[k] then
      seen[k] = true
      items[#items + 1] = string.format('{"sku":"W-%05d","quantity":1}', k)
    end
  end
  return '{"currency":"USD","items":[' .. table.concat(items, ",") .. ']}'
end

local HOT = '{"currency":"USD","items":[{"sku":"HOT-1","quantity":1},{"sku":"HOT-2","quantity":1},'
  .. '{"sku":"HOT-3","quantity":1}]}'

local function post(path, body, key)
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  if key then headers["Idempotency-Key"] = key end
  return wrk.format("POST", path, headers, body)
end

local function get(path)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

local function next_key()
  counter = counter + 1
  return prefix .. counter
end

local replay_body

function request()
  local s = scenario
  if s == "mix" then
    local r = math.random(1, 10)
    if r <= 6 then s = "get" elseif r <= 8 then s = "create-wide" elseif r == 9 then s = "list" else s = "quote" end
  end
  if s == "create-wide" then return post("/v1/orders", wide_items(lines), next_key()) end
  if s == "create-hot" then return post("/v1/orders", HOT, next_key()) end
  if s == "replay" then
    replay_body = replay_body or wide_items(lines)
    return post("/v1/orders", replay_body, "replay-" .. prefix)
  end
  if s == "get" then return get("/v1/orders/" .. order_id) end
  if s == "list" then return get("/v1/orders?limit=20") end
  if s == "quote" then return post("/v1/quotes", wide_items(lines), nil) end
  if s == "create-file" then return post("/v1/orders", file_body, next_key()) end
  if s == "quote-file" then return post("/v1/quotes", file_body, nil) end
  error("unknown scenario " .. s)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
