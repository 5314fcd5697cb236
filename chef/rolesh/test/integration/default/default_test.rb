# InSpec tests for rolesh::default (kitchen verify).

describe file('/usr/bin/rolesh') do
  it { should be_file }
  it { should be_executable }
  it { should_not be_setuid }
end

describe file('/etc/rolesh/config.toml') do
  it { should be_owned_by 'root' }
  its('mode') { should cmp '0644' }
  its('content') { should match(/^\[aws\]$/) }
  its('content') { should match(/^region = "/) }
end

describe command('rolesh check --config /etc/rolesh') do
  its('exit_status') { should eq 0 }
end

describe command('rolesh explain root --config /etc/rolesh --json') do
  its('exit_status') { should eq 77 }
end

%w(rolesh-broker.socket rolesh-broker.service rolesh-monitor.socket rolesh-monitor.service
   rolesh-imds-guard.service).each do |unit|
  describe systemd_service(unit) do
    it { should be_enabled }
    it { should be_running }
  end
end

# The session monitor runs as root and listens where the login shell connects.
describe processes('rolesh monitor') do
  its('users') { should eq ['root'] }
end

describe file('/run/rolesh/monitor.sock') do
  it { should be_socket }
  it { should be_owned_by 'root' }
  its('mode') { should cmp '0666' }
end

describe file('/run/rolesh/sessions') do
  it { should be_directory }
  it { should be_owned_by 'root' }
  its('mode') { should cmp '0711' }
end

describe file('/etc/ssh/sshd_config.d/rolesh.conf') do
  its('content') { should match(/^Match Group rolesh-users$/) }
  its('content') { should match(/^\s+AllowTcpForwarding no$/) }
end

describe command('sshd -t') do
  its('exit_status') { should eq 0 }
end

describe command('sshd -T -C user=nobody,host=client,addr=127.0.0.1') do
  its('stdout') { should match(/^permituserenvironment no$/) }
end

describe file('/var/log/rolesh/sessions') do
  it { should be_directory }
  it { should be_owned_by 'rolesh' }
  its('mode') { should cmp '0750' }
end

describe file('/etc/logrotate.d/rolesh') do
  its('content') { should match(%r{^/var/log/rolesh/audit\.jsonl \{$}) }
end
