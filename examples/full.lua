-- Every option rsp understands, set to its default (the three required ones
-- have no default). See the config reference in README.md.
listenPort = "8000"
listenAddress = "0.0.0.0"
backendAddress = "127.0.0.1"
backendPort = "8888"

triggerMode = "level"      -- or "edge"
backlog = 4096
maxEvents = 256
readBufferSize = 65536
readBudget = 16
acceptBudget = 64
highWaterMark = 1048576    -- 1 MiB
lowWaterMark = 262144      -- 256 KiB
idleTimeout = 600000       -- milliseconds without a byte either way; 0: never
connectTimeout = 5000      -- milliseconds

-- Knobs for experimenting with epoll; the defaults are the safe choices.
trace = false
readPolicy = "auto"       -- or "drain", "eagain", "once"
acceptPolicy = "drain"     -- or "once"
epolloutPolicy = "auto"    -- or "queued", "always"
rdhup = true
