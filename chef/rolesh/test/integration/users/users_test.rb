# InSpec tests for rolesh::users (kitchen verify, suite users).

%w(alice bob carol dave).each do |name|
  describe user(name) do
    it { should exist }
    its('shell') { should eq '/usr/bin/rolesh' }
    its('groups') { should include 'rolesh-users' }
  end
end

describe user('alice') do
  its('uid') { should eq 2001 }
  its('groups') { should include 'sre' }
end

describe file('/home/alice/.ssh/authorized_keys') do
  it { should be_owned_by 'alice' }
  its('mode') { should cmp '0600' }
  its('content') { should match(/alice@laptop/) }
end

describe file('/etc/rolesh/config.d/50-user-alice.toml') do
  its('content') { should match(%r{^alice = "arn:aws:iam::123456789012:role/platform-admin"$}) }
  its('content') { should match(/^record = "all"$/) }
end

describe file('/etc/rolesh/config.d/50-user-bob.toml') do
  it { should_not exist } # no role or session settings of his own
end

describe command('rolesh explain alice --config /etc/rolesh --json') do
  its('exit_status') { should eq 0 }
  its('stdout') { should match(%r{"role_arn": "arn:aws:iam::123456789012:role/platform-admin"}) }
end

describe command('rolesh explain bob --config /etc/rolesh --json') do
  its('stdout') { should match(%r{"role_arn": "arn:aws:iam::123456789012:role/sre"}) }
end

describe command('rolesh explain carol --config /etc/rolesh --json') do
  its('stdout') { should match(/"mode": "picker"/) }
end

describe file('/etc/rolesh/config.d/50-user-dave.toml') do
  its('content') { should match(%r{^dave = \{ role = "arn:aws:iam::123456789012:role/web-developer", access = "poweruser", namespaces = \["web"\] \}$}) }
end

describe command('rolesh explain dave --config /etc/rolesh --json') do
  its('stdout') { should match(/"access": "poweruser"/) }
  its('stdout') { should match(/"access_namespaces": \[\s*"web"\s*\]/) }
end
