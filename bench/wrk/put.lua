-- PUT /latest/api/token only: issues one token per request (RSS must not grow with them).
function init(args)
   req = wrk.format("PUT", "/latest/api/token", { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600" })
end

function request()
   return req
end
