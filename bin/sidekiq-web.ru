# Sidekiq's dashboard on pudding's Redis; bin/pudding-sidekiq-web runs it with rackup.
require "securerandom"
require "sidekiq"
require "sidekiq/web"

# The same resolution as pudding's own commands.
provider = ENV["REDIS_PROVIDER"].to_s
redis_url = [ENV["PUDDING_REDIS_URL"], provider.empty? ? nil : ENV[provider], ENV["REDIS_URL"]]
  .find { |url| url && !url.empty? } || "redis://localhost:6379/0"

Sidekiq.configure_client do |config|
  config.redis = { url: redis_url, size: Integer(ENV.fetch("SIDEKIQ_WEB_REDIS_POOL_SIZE", "5")) }
end

# Sidekiq::Web's CSRF protection needs a session. Without a configured secret, sessions
# last until the next restart, which only means logging in again.
secret = ENV["SIDEKIQ_WEB_SESSION_SECRET"].to_s
secret = SecureRandom.hex(64) if secret.empty?
use Rack::Session::Cookie, secret: secret, same_site: true, max_age: 86_400

credentials = ENV["SIDEKIQ_WEB_AUTH_BASIC"].to_s
unless credentials.empty?
  user, password = credentials.split(":", 2)
  use Rack::Auth::Basic, "pudding's Sidekiq dashboard" do |given_user, given_password|
    # Both compared, in constant time, whatever the first gives.
    Rack::Utils.secure_compare(given_user, user) & Rack::Utils.secure_compare(given_password, password)
  end
end

run Sidekiq::Web
