-- wrk's latency distribution as a percentile curve, for benchmarks/plot.sh.
--
--   wrk -t2 -c100 -d5s --latency -s benchmarks/wrk-percentiles.lua URL
--
-- Only done() is defined, so the requests are wrk's usual static ones (-H headers apply). After
-- wrk's own report it prints one line per percentile:
--
--   curve<TAB>PERCENTILE<TAB>MILLISECONDS
--
-- at the percentiles HdrHistogram's percentile iteration stops at with five ticks per half
-- distance to 100% (0, 10, … 50, 55, … 75, 77.5, …), as `gatehouse load --json` reports its own
-- (`latency_curve_ms`), until the ticks are finer than one recorded latency; then 100 (the
-- maximum). wrk keeps its latencies at 1 µs resolution, and before done() it corrects them for
-- coordinated omission (stats_correct: a latency longer than the expected interval between two
-- requests on a connection also counts the requests that would have waited behind it), as its
-- own "Latency Distribution" does: these are the same numbers, more of them.

function done(summary, latency, requests)
  -- How many latencies wrk recorded (latency(i) is the i-th distinct value and its count).
  local total = 0
  for i = 1, #latency do
    local _, count = latency(i)
    total = total + count
  end
  if total == 0 then return end
  local level = 0.0
  -- At most 10 ticks per halving; 60 halvings is beyond any count wrk can record.
  for _ = 1, 600 do
    if (100.0 - level) * total / 100.0 < 1.0 then break end
    io.write(string.format("curve\t%.10g\t%.3f\n", level, latency:percentile(level) / 1000.0))
    local ticks = 5 * 2 ^ (math.floor(math.log(100.0 / (100.0 - level)) / math.log(2)) + 1)
    level = level + 100.0 / ticks
  end
  -- percentile(100) finds no rank past the last request; the maximum is the 100th percentile.
  io.write(string.format("curve\t100\t%.3f\n", latency.max / 1000.0))
end
