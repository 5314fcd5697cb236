#
# Cookbook:: rolesh
# Attributes:: default
#
# Everything under node['rolesh']['config'] mirrors /etc/rolesh/config.toml
# (SPEC section 5) key for key: node['rolesh']['config']['aws']['region'] is
# `[aws] region`, node['rolesh']['config']['cluster'] is `[[cluster]]`, and so
# on. A key whose value is nil is left out of the rendered file, so rolesh's
# built-in default applies. Keys that are not listed here are passed through
# unchanged, and `rolesh check` (run as the template's verify command) rejects
# the ones it does not know.
#
# Lists of tables ([[cluster]], [[cluster.namespace]], [[mapping.groups]],
# [[session.override]]) may be written either as an Array of Hashes, exactly
# like the TOML, or as a Hash keyed by name, which merges well across roles,
# environments and policy files:
#
#   default['rolesh']['config']['cluster']['prod'] = { 'region' => 'eu-west-1' }
#
# In the Hash form the key fills in `name` (clusters, namespaces) or `group`
# (mapping.groups); for session overrides it is only a label. Entries keep the
# Hash's order, and an entry set to nil or false is dropped.
#

# ---------------------------------------------------------------- install
# 'repository'   : configure an apt/yum repository (when repository.uri is set)
#                  and install package_name from it (or from repositories the
#                  node already has when uri is nil)
# 'package_file' : install a .deb/.rpm from package_file.source (local path or
#                  http(s) URL, downloaded to the Chef cache)
# 'none'         : the package is installed by something else
default['rolesh']['install_method'] = 'repository'
default['rolesh']['package_name'] = 'rolesh'
default['rolesh']['version'] = nil # nil: latest available

default['rolesh']['repository']['uri'] = nil
default['rolesh']['repository']['key'] = nil # apt: key URL / path; yum: gpgkey URL
default['rolesh']['repository']['distribution'] = nil # apt; nil: node's codename
default['rolesh']['repository']['components'] = %w(main) # apt
default['rolesh']['repository']['gpgcheck'] = true # yum

default['rolesh']['package_file']['source'] = nil
default['rolesh']['package_file']['checksum'] = nil # sha256, for URLs

# ---------------------------------------------------------------- paths
default['rolesh']['binary'] = '/usr/bin/rolesh'
default['rolesh']['config_dir'] = '/etc/rolesh'
default['rolesh']['system_user'] = 'rolesh' # created by the package

# ---------------------------------------------------------------- services
default['rolesh']['services']['broker'] = 'rolesh-broker.service'
default['rolesh']['services']['broker_socket'] = 'rolesh-broker.socket'
default['rolesh']['services']['monitor'] = 'rolesh-monitor.service'
default['rolesh']['services']['monitor_socket'] = 'rolesh-monitor.socket'
default['rolesh']['services']['imds_guard'] = 'rolesh-imds-guard.service'
default['rolesh']['imds_guard'] = true

# ---------------------------------------------------------------- sshd
default['rolesh']['sshd']['manage'] = true
default['rolesh']['sshd']['dropin'] = '/etc/ssh/sshd_config.d/rolesh.conf'
default['rolesh']['sshd']['config'] = '/etc/ssh/sshd_config'
default['rolesh']['sshd']['binary'] = '/usr/sbin/sshd'
default['rolesh']['sshd']['service'] =
  case node['platform_family']
  when 'debian' then 'ssh'
  else 'sshd'
  end
# Prepend `Include /etc/ssh/sshd_config.d/*.conf` to sshd_config when it is
# missing (RHEL 8, older Ubuntu).
default['rolesh']['sshd']['ensure_include'] = true
default['rolesh']['sshd']['match_group'] = 'rolesh-users'
# Global keywords (before the Match block). sshd uses the first value it
# reads, and the distributions Include sshd_config.d at the top.
default['rolesh']['sshd']['global'] = {
  'PermitUserEnvironment' => 'no',
}
# Keywords inside `Match Group rolesh-users`. Set one to nil to drop it.
default['rolesh']['sshd']['match'] = {
  'AllowTcpForwarding' => 'no',
  'AllowStreamLocalForwarding' => 'no',
  'AllowAgentForwarding' => 'no',
  'X11Forwarding' => 'no',
  'PermitTunnel' => 'no',
  'PermitUserRC' => 'no',
  'GatewayPorts' => 'no',
  'DisableForwarding' => 'yes',
}

# ---------------------------------------------------------------- users
# recipes/users.rb (included by default when manage_users is true)
default['rolesh']['manage_users'] = false
default['rolesh']['users_group'] = 'rolesh-users'
default['rolesh']['users_group_gid'] = nil
default['rolesh']['users_data_bag'] = nil # e.g. 'rolesh_users'
# groups: { 'sre' => { 'gid' => 2001 }, 'contractors' => {} }
default['rolesh']['groups'] = {}
# users: { 'alice' => { 'uid' => 2001, 'groups' => ['sre'],
#   'role_arn' => 'arn:aws:iam::123456789012:role/platform-admin',
#   'access' => 'admin', 'namespaces' => ['web'],   # optional, need role_arn
#   'mode' => 'shell', 'record' => 'all', 'ssh_keys' => ['ssh-ed25519 AAAA...'],
#   'action' => 'create' } }   # action 'remove' deletes the user and drop-in
default['rolesh']['users'] = {}

# ---------------------------------------------------------------- logs
default['rolesh']['manage_recordings_dir'] = true
default['rolesh']['logrotate']['manage'] = true
default['rolesh']['logrotate']['path'] = '/etc/logrotate.d/rolesh'
default['rolesh']['logrotate']['frequency'] = 'daily'
default['rolesh']['logrotate']['rotate'] = 30
default['rolesh']['logrotate']['copytruncate'] = true
default['rolesh']['logrotate']['postrotate'] = nil # used when copytruncate is false

# ================================================================ config.toml
# [aws]
default['rolesh']['config']['aws']['region'] = 'us-east-1'
default['rolesh']['config']['aws']['sts_endpoint'] = 'regional' # regional | legacy | https URL
default['rolesh']['config']['aws']['session_duration'] = '1h' # 15m..12h
default['rolesh']['config']['aws']['session_name'] = '{user}'
default['rolesh']['config']['aws']['source_identity'] = '{user}'
default['rolesh']['config']['aws']['expose_credentials'] = false
# [aws.tags]  STS session tags, templates allowed, at most 50
default['rolesh']['config']['aws']['tags'] = {
  'unix_user' => '{user}',
  'bastion' => '{hostname}',
}

# [mapping]  deny_users > users > groups (in order) > default_role > deny
default['rolesh']['config']['mapping']['deny_users'] = %w(root)
default['rolesh']['config']['mapping']['default_role'] = nil # nil: unmapped users are denied
# [mapping.users]  user => role ARN, or user => { 'role' => ARN,
# 'access' => 'admin' | 'poweruser' | 'user', 'namespaces' => [...] }
default['rolesh']['config']['mapping']['users'] = {}
# [[mapping.groups]]  [{ 'group' => 'sre', 'role' => 'arn:...' }] or { 'sre' => { 'role' => 'arn:...' } }
default['rolesh']['config']['mapping']['groups'] = []

# [[cluster]]  keys: name, region, endpoint, certificate_authority_data,
# ca_file, default_namespace, groups, namespace ([[cluster.namespace]]:
# name, selectors)
default['rolesh']['config']['cluster'] = []

# [session]
default['rolesh']['config']['session']['mode'] = 'shell' # shell | restricted | picker
default['rolesh']['config']['session']['shell'] = '/bin/bash'
default['rolesh']['config']['session']['path'] = '/usr/local/bin:/usr/bin:/bin'
default['rolesh']['config']['session']['allowed_commands'] = %w(kubectl helm k9s aws)
default['rolesh']['config']['session']['file_transfer'] = false
default['rolesh']['config']['session']['idle_timeout'] = '30m'
default['rolesh']['config']['session']['max_duration'] = '12h'
default['rolesh']['config']['session']['banner'] = nil
default['rolesh']['config']['session']['record'] = 'off' # off | interactive | all
# argv `rolesh exec` runs in a container when none is given; nil: bash if
# present, else sh
default['rolesh']['config']['session']['exec_command'] = nil
# [[session.override]]  a user's own override beats a group's, then first match wins; keys: users, groups and any
# [session] key, e.g. { 'groups' => ['contractors'], 'mode' => 'picker' }
default['rolesh']['config']['session']['override'] = []

# [broker]
default['rolesh']['config']['broker']['refresh_before'] = '10m'
default['rolesh']['config']['broker']['max_connections'] = 1024
default['rolesh']['config']['broker']['max_connections_per_uid'] = 64
default['rolesh']['config']['broker']['idle_timeout'] = '30s'
default['rolesh']['config']['broker']['rate_per_uid'] = 200

# [audit]
default['rolesh']['config']['audit']['journald'] = true
default['rolesh']['config']['audit']['file'] = nil # e.g. '/var/log/rolesh/audit.jsonl'
default['rolesh']['config']['audit']['recordings_dir'] = '/var/log/rolesh/sessions'
