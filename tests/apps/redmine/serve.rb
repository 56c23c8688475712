# ruby serve.rb <port>: Debian's Redmine (/usr/share/redmine) on WEBrick,
# 127.0.0.1 only. webrick is not in Redmine's Gemfile, so it is loaded before
# Bundler narrows the load path; Rack's own WEBrick handler then runs the app.
require 'webrick'
port = Integer(ARGV.fetch(0))
Dir.chdir('/usr/share/redmine')
require '/usr/share/redmine/config/environment'
require 'rack/handler/webrick'
$stdout.sync = true
puts "redmine test app on http://127.0.0.1:#{port}"
Rack::Handler::WEBrick.run(Rails.application, Host: '127.0.0.1', Port: port,
                           AccessLog: [], Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN))
