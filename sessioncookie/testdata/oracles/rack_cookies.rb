# Rack oracle: what a Rails app's cookie jar is built from,
# Rack::Request#cookies (Debian ruby-rack 2.2), behind Puma (Debian puma
# 5.6, Rails' default server), reached over TCP. Every input is sent as a
# raw HTTP/1.1 request whose Cookie lines are the input's lines, byte for
# byte; Puma's parser joins repeated lines into HTTP_COOKIE with ", ".
require 'json'
require 'socket'
require 'rack'
require 'puma'
require 'puma/server'

def bytes(s) = s.b.force_encoding(Encoding::ISO_8859_1).encode(Encoding::UTF_8)

app = lambda do |env|
  pairs = Rack::Request.new(env).cookies.map { |k, v| [k.nil? ? nil : bytes(k), v.nil? ? nil : bytes(v)] }
  body = JSON.generate(pairs)
  [200, { 'Content-Type' => 'application/json', 'Content-Length' => body.bytesize.to_s }, [body]]
end

server = Puma::Server.new(app, Puma::Events.strings, min_threads: 1, max_threads: 4)
port = Integer(ENV['RACK_COOKIES_PORT'] || 0)
listener = server.add_tcp_listener('127.0.0.1', port)
port = listener.addr[1]
server.run

def ask(port, lines)
  req = +"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  lines.each { |l| req << 'Cookie: ' << l << "\r\n" }
  req << "Connection: close\r\n\r\n"
  resp = Socket.tcp('127.0.0.1', port, connect_timeout: 20) do |s|
    s.write(req)
    s.read
  end
  head, body = resp.split("\r\n\r\n", 2)
  status = head.to_s.split(' ', 3)[1]
  return { 'error' => "HTTP #{status}" } unless status == '200'
  JSON.parse(body.force_encoding(Encoding::UTF_8))
end

$stdout.sync = true
$stdin.each_line do |line|
  out = begin
    ask(port, JSON.parse(line).map { |l| l.encode(Encoding::ISO_8859_1).b })
  rescue StandardError => e
    { 'error' => "#{e.class}: #{e.message}" }
  end
  $stdout.write(JSON.generate(out) + "\n")
end
server.stop(true)
