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
--   },
--   db = { "[::1]:5432" },
-- }
-- Instead of listenPort/listenAddress, several listeners, each with its pool:
-- listeners = {
--   { port = "8000", address = "0.0.0.0", backend = "app" },
--   { port = "5433", backend = "db", maxConnections = 100 },  -- this listener's own limit; 0: none
--   { port = "5434", backend = "db", acceptProxy = true },    -- behind an L4 balancer that sends PROXY headers
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

-- Knobs for experimenting with epoll; the defaults are the safe choices.
trace = false
readPolicy = "auto"        -- or "drain", "eagain", "once"
acceptPolicy = "drain"     -- or "once"
epolloutPolicy = "auto"    -- or "queued", "always"
rdhup = true
