-- The soak's mix: IMDSv1 GETs of leaves and listings, IMDSv2 token PUTs, and v2 GETs with
-- tokens issued during the run (the first ones use TOKEN). Every request in the mix is due a
-- 2xx; response() counts any other status, and the tokens received. Requests are formatted
-- once (wrk's Lua is the bottleneck otherwise); the v2 ones again each time the thread
-- switches to a newer token (every 64th token received).
-- Args: TOKEN [close]
local paths = {
   "/latest/meta-data/instance-id",
   "/latest/meta-data/",
   "/latest/meta-data/placement/availability-zone",
   "/latest/dynamic/instance-identity/document",
   "/latest/meta-data/iam/security-credentials/",
   "/",
   "/latest/meta-data/network/interfaces/macs/",
}

local function hdrs(t)
   if close then t["Connection"] = "close" end
   return t
end

local function format_v2(token)
   local out = {}
   for i, p in ipairs(paths) do
      out[i] = wrk.format("GET", p, hdrs({ ["X-aws-ec2-metadata-token"] = token }))
   end
   return out
end

function init(args)
   close = args[2] == "close"
   non2xx = 0
   tokens_seen = 0
   v1 = {}
   for i, p in ipairs(paths) do v1[i] = wrk.format("GET", p, hdrs({})) end
   v2 = format_v2(args[1])
   put = wrk.format("PUT", "/latest/api/token", hdrs({ ["X-aws-ec2-metadata-token-ttl-seconds"] = "60" }))
   n = 0
end

-- Per 8 requests: 1 token PUT, 4 v2 GETs, 3 v1 GETs, over 7 paths.
function request()
   n = n + 1
   local k = n % 8
   local i = (n % #paths) + 1
   if k == 0 then return put end
   if k % 2 == 1 then return v2[i] end
   return v1[i]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif #body == 56 and headers["X-Aws-Ec2-Metadata-Token-Ttl-Seconds"] == "60" then
      tokens_seen = tokens_seen + 1
      if tokens_seen % 64 == 1 then v2 = format_v2(body) end
   end
end
