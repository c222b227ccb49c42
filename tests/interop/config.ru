# Sidekiq::Web as a bare Rack app; its CSRF protection needs a session middleware.
require "securerandom"
require "sidekiq"
require "sidekiq/web"

use Rack::Session::Cookie, secret: ENV.fetch("SESSION_SECRET") { SecureRandom.hex(32) }, same_site: true
run Sidekiq::Web
