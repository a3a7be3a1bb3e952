-- GET one leaf. Args: PATH [close]; `close` adds `Connection: close` (a new connection per
-- request, the cloud-init pattern). No response() callback: wrk does not parse bodies.
function init(args)
   local headers = {}
   if args[2] == "close" then headers["Connection"] = "close" end
   req = wrk.format("GET", args[1], headers)
end

function request()
   return req
end
