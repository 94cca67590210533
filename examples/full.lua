-- Every option rsp understands, set to its default (the three required ones
-- have no default). See the config reference in README.md. Any other global
-- is an error: helper values belong in locals (local host = "127.0.0.1").
listenPort = "8000"
listenAddress = "0.0.0.0"
backendAddress = "127.0.0.1"
backendPort = "8888"
resolver = ""              -- the system resolver; or a DNS server: "192.0.2.53:53"
resolveInterval = 5000     -- ms between lookups of backends given by name; 0: at start-up only
backend = ""               -- the pool listenPort's listener sends to, when backends has several
acceptProxy = false        -- true: each connection starts with a PROXY protocol header (behind an L4 balancer)

-- Instead of backendAddress/backendPort, pools of several backends (docs/balancing.md):
-- backends = {
--   app = {
--     "10.0.0.1:8080",
--     { "10.0.0.2:8080", weight = 3, maxConnections = 0 },
--     { "10.0.0.9:8080", backup = true },
--     balance = "roundrobin",    -- or "leastconn", "random", "hash"
--     maxFails = 1, failTimeout = 10000, retries = 2, slowStart = 0,
--     check = { interval = 2000, timeout = 1000, rise = 2, fall = 3 },  -- add http = "/health" for an HTTP check
--     sendProxy = "v2",          -- or "v1": a PROXY protocol header to each member first (off when not set)
--     keepalive = 32, keepaliveTimeout = 60000,  -- HTTP mode: idle upstream connections kept per member, and for how long
--   },
--   db = { "[::1]:5432" },
-- }
-- Instead of listenPort/listenAddress, several listeners, each with its pool:
-- listeners = {
--   { port = "8000", address = "0.0.0.0", backend = "app" },
--   { port = "5433", backend = "db", maxConnections = 100 },  -- this listener's own limit; 0: none
--   { port = "5434", backend = "db", acceptProxy = true },    -- behind an L4 balancer that sends PROXY headers
--   { port = "80", mode = "http" },                           -- HTTP mode on this listener only
-- }

triggerMode = "level"      -- or "edge"
backlog = 4096
maxEvents = 256
readBufferSize = 65536
readBudget = 16
acceptBudget = 64
highWaterMark = 1048576    -- 1 MiB
lowWaterMark = 262144      -- 256 KiB
zeroCopy = "auto"          -- splice(2) a direction once one read brings 64 KB; "on", "off"
idleTimeout = 600000       -- milliseconds without a byte either way; 0: never
connectTimeout = 5000      -- milliseconds
drainTimeout = 30000       -- SIGTERM: open connections may finish within this; 0: reset them at once
drainDelay = 0             -- SIGTERM: keep accepting this long while /healthz says 503
accessLog = ""             -- a file ("/var/log/rsp/access.log"), "-" for stdout, "": none
accessLogFormat = "combined"  -- or "json"
-- stats = { listen = "127.0.0.1:8404" }   -- /stats, /metrics, /healthz, / (keep it private)
maxConnections = 0         -- clients at once; 0: from the open-files limit, (soft - 64 - listeners - members) / 3 (/ 2 without zero copy, / 6 with zeroCopy = "on")
workers = 0                -- reactor threads; 0: one per CPU rsp may use
acceptMode = "reuseport"   -- a listening socket per worker; or "shared" (one, EPOLLEXCLUSIVE)

-- HTTP mode (docs/http.md): rsp reads each request and routes it by Host.
mode = "tcp"               -- or "http"; per listener too (see listeners)
-- routes = {                 -- by Host: exact, then the longest wildcard, then default
--   ["example.com"] = "app",
--   ["*.api.example.com"] = "db",
--   default = "app",           -- without it (and with several pools) an unknown host gets 404
-- }
-- limits = { requestLine = 8192, headerBytes = 32768, headers = 100, body = 0 }  -- body 0: no limit
-- trustedProxies = { "10.0.0.0/8", "::1/128" }  -- whose X-Forwarded-For is kept (appended to)
xForwarded = true          -- set X-Forwarded-Proto and X-Forwarded-Host
requestHeadTimeout = 10000 -- ms for a whole request head, else 408; 0: no limit
keepAliveTimeout = 60000   -- ms an idle keep-alive client connection is kept; 0: no limit
backendTimeout = 60000     -- ms to the backend's first response byte, else 504; 0: no limit
-- Called for each request before routes, in each worker (the file runs again there):
-- function route(req)
--   if req.headers["x-canary"] then return "db" end   -- a pool
--   if req.path == "/admin" then return 403 end       -- a status to answer
--   return nil                                        -- nil: go by routes
-- end

-- Knobs for experimenting with epoll; the defaults are the safe choices.
trace = false
readPolicy = "auto"        -- or "drain", "eagain", "once"
acceptPolicy = "drain"     -- or "once"
epolloutPolicy = "auto"    -- or "queued", "always"
rdhup = true
