-- POST one JSON body per request, rotating over the lines of a file (one body a line).
--
--   wrk -t2 -c8 -d20s --latency -s benchmarks/wrk/post_bodies.lua URL -- BODIES_FILE [API_KEY]
--
-- Each wrk thread has its own Lua state: every thread reads the file in init() and starts at
-- its own offset, so two threads do not send the same customer at the same moment.

local bodies = {}
local position = 0
local threads = 0

function setup(thread)
   thread:set("thread_number", threads)
   threads = threads + 1
end

function init(args)
   local path = args[1]
   if path == nil then
      error("post_bodies.lua: pass the bodies file after --")
   end
   for line in io.lines(path) do
      if line ~= "" then
         bodies[#bodies + 1] = line
      end
   end
   if #bodies == 0 then
      error("post_bodies.lua: no bodies in " .. path)
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if args[2] ~= nil and args[2] ~= "" then
      wrk.headers["X-API-Key"] = args[2]
   end
   position = ((thread_number or 0) * 7919) % #bodies
end

function request()
   position = position % #bodies + 1
   return wrk.format(nil, nil, nil, bodies[position])
end
