# Ruby job classes for the interop tests: loaded by Ruby's `sidekiq -r` and by the Ruby snippets.
require "json"
require "sidekiq"
require "sidekiq/api"

# The tests must not wait for Ruby's scheduler: poll about every half second (no 10 s initial wait).
Sidekiq.options[:poll_interval_average] = 0.5
Sidekiq.options[:average_scheduled_poll_interval] = 0.5

# Records each run in Redis, where the Python test reads it back.
class RubyEchoJob
  include Sidekiq::Worker
  sidekiq_options queue: "rb"

  def perform(*args)
    Sidekiq.redis { |c| c.rpush("rb:ran", JSON.generate("jid" => jid, "args" => args)) }
  end
end

# The Ruby twin of pyjobs.FailJob: what Ruby's own worker writes to `retry` is the reference.
class RubyFailJob
  include Sidekiq::Worker
  sidekiq_options queue: "rb", retry: 1, backtrace: true

  def perform(*args)
    Sidekiq.redis { |c| c.rpush("rb:ran", JSON.generate("jid" => jid, "args" => args)) }
    raise ArgumentError, "boom #{args.inspect}"
  end
end

# Stays busy until the test pushes to "release:<jid>" (or 30 s pass), like pyjobs.SlowJob.
class RubySlowJob
  include Sidekiq::Worker
  sidekiq_options queue: "rb"

  def perform(*args)
    Sidekiq.redis do |c|
      c.rpush("rb:ran", JSON.generate("jid" => jid, "args" => args))
      c.blpop("release:#{jid}", timeout: 30)
    end
  end
end

# The Ruby twin of pyjobs.DoomedJob: `retry: 0` goes straight to the dead set.
class RubyDoomedJob
  include Sidekiq::Worker
  sidekiq_options queue: "rb", retry: 0, backtrace: true

  def perform(*args)
    raise "doomed"
  end
end
