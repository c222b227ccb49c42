# The no-op job for bench/throughput, run by Ruby's `sidekiq -r bench/jobs.rb -q bench`.
# Its Sidekiq class name is the same as bench/noop_jobs.py's NoopJob, so both
# engines run the very same payloads.
require "sidekiq"

# Debian's redis-rb warns on stderr at every BRPOP Sidekiq 6.4.1 makes; that I/O is
# not Sidekiq's own cost, so the peer runs without it.
Redis.silence_deprecations = true

class NoopJob
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform(*args)
  end
end
