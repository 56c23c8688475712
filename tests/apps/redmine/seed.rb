# rails runner seed.rb: the test users (Redmine's own admin stays as created
# by its migrations). Passwords are hashed by Redmine itself.
[['alice', 'alice-password', 'Alice', true], ['bob', 'bob-password', 'Bob', false]].each do |login, pw, first, admin|
  u = User.find_by_login(login) || User.new
  u.login = login
  u.firstname = first
  u.lastname = 'Test'
  u.mail = "#{login}@example.test"
  u.admin = admin
  u.password = u.password_confirmation = pw
  u.status = User::STATUS_ACTIVE
  u.must_change_passwd = false
  u.save!
end
Setting.login_required = '1'
Setting.autologin = '7' # offer "Stay logged in" (7 days), so the autologin cookie can be observed
puts "seeded: #{User.where(login: %w[alice bob]).pluck(:id, :login).inspect}"
