#
# Cookbook:: rolesh
# Resource:: user  (rolesh_user)
#
# A bastion user: the Unix account (login shell /usr/bin/rolesh, member of
# rolesh-users and of the groups the mapping uses) and, when it has its own
# role or session settings, the drop-in /etc/rolesh/config.d/50-user-NAME.toml:
#
#   rolesh_user 'alice' do
#     role_arn 'arn:aws:iam::123456789012:role/platform-admin'
#     group %w(sre)
#     ssh_keys ['ssh-ed25519 AAAAC3... alice@laptop']
#     record 'all'
#   end
#
#   rolesh_user 'frank' do
#     role_arn 'arn:aws:iam::123456789012:role/web-developer'
#     access 'poweruser'      # [mapping.users] frank = { role, access, namespaces }
#     namespaces %w(web)
#   end
#
#   rolesh_user 'bob' do
#     group 'web-devs'        # mapped through [[mapping.groups]]
#     mode 'picker'
#   end
#
# The drop-in is checked with `rolesh check` against the whole configuration
# before it replaces the old one. Its [[session.override]] is appended after
# those of config.toml, and the first match wins.
#

unified_mode true if respond_to?(:unified_mode)
provides :rolesh_user

description 'A rolesh bastion user: Unix account, group memberships and per-user role/session drop-in'

property :username, String,
         name_property: true,
         regex: /\A[a-z_][a-z0-9_.-]{0,31}\z/,
         description: 'Unix user name'
property :role_arn, String,
         regex: %r{\Aarn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/{}-]+\z},
         description: 'IAM role for this user ([mapping.users]); without it the user maps through groups or default_role'
property :access, String,
         equal_to: %w(admin poweruser user),
         description: 'Kubernetes access level of role_arn (what `rolesh rbac` binds); needs role_arn'
property :namespaces, Array,
         description: 'namespaces the access applies in (default: cluster-wide); needs role_arn'
property :group, [String, Array],
         coerce: proc { |v| Array(v).map(&:to_s) },
         default: [],
         description: 'Unix groups to join besides rolesh-users (the groups of [[mapping.groups]], cluster groups, overrides)'
property :uid, [Integer, String]
property :comment, String
property :home, String
property :ssh_keys, [String, Array],
         coerce: proc { |v| Array(v) },
         default: [],
         description: 'authorized_keys lines; empty leaves ~/.ssh alone'
property :manage_user, [true, false],
         default: true,
         description: 'false: only write the drop-in (accounts come from LDAP/SSSD etc.)'
property :users_group, String, default: lazy { node['rolesh']['users_group'] }
property :login_shell, String, default: lazy { node['rolesh']['binary'] }
property :binary, String, default: lazy { node['rolesh']['binary'] }
property :config_dir, String, default: lazy { node['rolesh']['config_dir'] }
property :broker_service, String, default: lazy { node['rolesh']['services']['broker'] }

# [[session.override]] keys, named as in config.toml.
property :mode, String, equal_to: %w(shell restricted picker)
property :record, String, equal_to: %w(off interactive all)
property :shell, String, description: 'session shell in mode shell (the login shell is always rolesh)'
property :path, String
property :allowed_commands, Array
property :file_transfer, [true, false]
property :idle_timeout, String
property :max_duration, String
property :banner, String
property :exec_command, Array, description: 'argv `rolesh exec` runs when none is given'

action_class do
  def dropin_name
    RoleshCookbook::Config.user_dropin_name(new_resource.username)
  end

  def dropin_path
    ::File.join(new_resource.config_dir, 'config.d', dropin_name)
  end

  def dropin_variables
    attrs = { 'role_arn' => new_resource.role_arn, 'access' => new_resource.access, 'namespaces' => new_resource.namespaces }
    RoleshCookbook::Config::OVERRIDE_KEYS.each do |key|
      attrs[key] = new_resource.send(key)
    end
    RoleshCookbook::Config.user_dropin_variables(new_resource.username, attrs)
  end

  def home_dir
    new_resource.home || ::File.join('/home', new_resource.username)
  end

  def broker_reload
    service new_resource.broker_service do
      action :nothing
    end
  end
end

action :create do
  name = new_resource.username
  home_path = home_dir
  reload = "service[#{new_resource.broker_service}]"

  if new_resource.manage_user
    user_uid = new_resource.uid
    user_comment = new_resource.comment
    login_shell = new_resource.login_shell
    user name do
      uid user_uid if user_uid
      comment user_comment if user_comment
      home home_path
      shell login_shell
      manage_home true
    end

    ([new_resource.users_group] + new_resource.group).uniq.each do |g|
      group "#{g} (member #{name})" do
        group_name g
        members [name]
        append true
      end
    end

    unless new_resource.ssh_keys.empty?
      keys = new_resource.ssh_keys.map { |k| "#{k.strip}\n" }.join
      directory ::File.join(home_path, '.ssh') do
        owner name
        mode '0700'
      end

      file ::File.join(home_path, '.ssh', 'authorized_keys') do
        owner name
        mode '0600'
        content keys
      end
    end
  end

  broker_reload
  vars = dropin_variables
  if vars[:role_arn].nil? && vars[:override].empty?
    file dropin_path do
      action :delete
      notifies :reload, reload, :delayed
    end
  else
    binary = new_resource.binary
    config_dir = new_resource.config_dir
    name_toml = dropin_name
    template dropin_path do
      cookbook 'rolesh'
      source 'config.d-user.toml.erb'
      owner 'root'
      group 'root'
      mode '0644'
      helpers(RoleshCookbook::TomlHelpers)
      variables(vars)
      verify do |candidate|
        RoleshCookbook::Verify.dropin(binary, config_dir, name_toml, candidate)
      end
      notifies :reload, reload, :delayed
    end
  end
end

action :remove do
  name = new_resource.username
  reload = "service[#{new_resource.broker_service}]"
  broker_reload
  file dropin_path do
    action :delete
    notifies :reload, reload, :delayed
  end

  if new_resource.manage_user
    user name do
      action :remove
    end
  end
end
