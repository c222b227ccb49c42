# The no-op job for bench/throughput, run by Ruby's `sidekiq -r bench/jobs.rb -q bench`.
# Its Sidekiq class name is the same as bench/noop_jobs.py's NoopJob, so both
# engines run the very same payloads.
require "sidekiq"

class NoopJob
  include Sidekiq::Worker
  sidekiq_options queue: "bench"

  def perform(*args)
  end
end
