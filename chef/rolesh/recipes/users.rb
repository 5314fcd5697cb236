#
# Cookbook:: rolesh
# Recipe:: users
#
# Unix groups and bastion users from node['rolesh']['groups'],
# node['rolesh']['users'] and, when node['rolesh']['users_data_bag'] is set,
# the items of that data bag (attributes win over data bag items):
#
#   { "id": "alice", "uid": 2001, "groups": ["sre"],
#     "role_arn": "arn:aws:iam::123456789012:role/platform-admin",
#     "ssh_keys": ["ssh-ed25519 AAAA... alice@laptop"], "record": "all" }
#
# Every user gets the login shell /usr/bin/rolesh and joins rolesh-users;
# role_arn (with access and namespaces: `[mapping.users] NAME = { role,
# access, namespaces }`) and session keys (mode, record, shell, ...) go to the user's
# drop-in /etc/rolesh/config.d/50-user-NAME.toml (resource rolesh_user).
# "action": "remove" removes the user and the drop-in.
#

rolesh = node['rolesh']

group rolesh['users_group'] do
  gid rolesh['users_group_gid'] if rolesh['users_group_gid']
end

(rolesh['groups'] || {}).each do |name, attrs|
  next if attrs.nil? || attrs == false
  attrs = {} if attrs == true
  group name do
    gid attrs['gid'] if attrs['gid']
    action attrs['action'].to_s == 'remove' ? :remove : :create
  end
end

items = []
if rolesh['users_data_bag']
  bag = rolesh['users_data_bag']
  items = data_bag(bag).sort.map { |id| data_bag_item(bag, id) }
end

RoleshCookbook::Config.users(rolesh, items).each do |name, u|
  rolesh_user name do
    role_arn u['role_arn'] if u['role_arn']
    access u['access'] if u['access']
    namespaces Array(u['namespaces']) unless u['namespaces'].nil?
    group(Array(u['groups']) + Array(u['group']))
    uid u['uid'] if u['uid']
    comment u['comment'] if u['comment']
    home u['home'] if u['home']
    ssh_keys Array(u['ssh_keys'])
    manage_user u['manage_user'] unless u['manage_user'].nil?
    RoleshCookbook::Config::OVERRIDE_KEYS.each do |key|
      send(key, u[key]) unless u[key].nil?
    end
    action u['action'].to_s == 'remove' ? :remove : :create
  end
end
