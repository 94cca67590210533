-- The configuration `npm start` runs: the C rsp's three settings.
listenPort = "8000"
backendAddress = "127.0.0.1"
backendPort = "8888"

-- Try edge-triggered epoll instead of level-triggered:
-- triggerMode = "edge"
