-- The IMDSv2 flow: PUT /latest/api/token, then GET a leaf with the token; each wrk thread
-- alternates the two. Args: PATH TOKEN [close]. GETs present TOKEN (issued by the server under
-- test just before the run; tokens are stateless, so any live one costs the same to verify).
function init(args)
   local extra = {}
   if args[3] == "close" then extra["Connection"] = "close" end
   local put_h = { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600" }
   local get_h = { ["X-aws-ec2-metadata-token"] = args[2] }
   for k, v in pairs(extra) do put_h[k] = v; get_h[k] = v end
   put = wrk.format("PUT", "/latest/api/token", put_h)
   get = wrk.format("GET", args[1], get_h)
   n = 0
end

function request()
   n = n + 1
   if n % 2 == 1 then return put end
   return get
end
