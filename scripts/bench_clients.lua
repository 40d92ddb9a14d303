-- wrk script for `make bench-api`: GET /api/v1/clients/ with an API key.
-- The key comes from the environment (BENCH_API_KEY) so it never appears on a command line.
local key = os.getenv("BENCH_API_KEY")
if key == nil or key == "" then
  error("BENCH_API_KEY is not set")
end

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Accept"] = "application/json"
