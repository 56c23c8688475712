# Rack oracle: Debian ruby-rack 2.2's Rack::Request#cookies, what Rails'
# cookie jar is built from. Puma and WEBrick join repeated Cookie lines into
# HTTP_COOKIE with ", ".
require 'json'
require 'stringio'
require 'rack'

def bytes(s) = s.b.force_encoding(Encoding::ISO_8859_1).encode(Encoding::UTF_8)

$stdout.sync = true
$stdin.each_line do |line|
  out = begin
    lines = JSON.parse(line).map { |l| l.encode(Encoding::ISO_8859_1).b }
    env = Rack::MockRequest.env_for('/')
    env['HTTP_COOKIE'] = lines.join(', ') unless lines.empty?
    Rack::Request.new(env).cookies.map { |k, v| [k.nil? ? nil : bytes(k), v.nil? ? nil : bytes(v)] }
  rescue StandardError => e
    { 'error' => "#{e.class}: #{e.message}" }
  end
  $stdout.write(JSON.generate(out) + "\n")
end
