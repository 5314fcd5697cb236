#
# Cookbook:: rolesh
# Recipe:: default
#
# Installs rolesh, renders /etc/rolesh/config.toml from node['rolesh']['config'],
# runs the broker, the session monitor and the IMDS guard, and locks down sshd for
# rolesh users.
#

rolesh = node['rolesh']
config_dir = rolesh['config_dir']
binary = rolesh['binary']

# ------------------------------------------------------------------ package
case rolesh['install_method']
when 'repository'
  repo = rolesh['repository']
  if repo['uri']
    case node['platform_family']
    when 'debian'
      apt_repository 'rolesh' do
        uri repo['uri']
        key Array(repo['key']) if repo['key']
        distribution repo['distribution'] if repo['distribution']
        components repo['components']
        # apt_repository refreshes the package lists when it changes.
      end
    when 'rhel', 'fedora', 'amazon'
      yum_repository 'rolesh' do
        description 'rolesh'
        baseurl repo['uri']
        gpgkey repo['key'] if repo['key']
        gpgcheck repo['gpgcheck']
      end
    else
      raise "rolesh: no package repository support for platform family #{node['platform_family']}"
    end
  end

  package rolesh['package_name'] do
    version rolesh['version'] if rolesh['version']
  end
when 'package_file'
  package_source = rolesh['package_file']['source']
  raise "rolesh: install_method 'package_file' needs node['rolesh']['package_file']['source']" if package_source.to_s.empty?

  local = package_source
  if package_source =~ %r{\A(https?|ftp)://}
    local = ::File.join(Chef::Config[:file_cache_path], ::File.basename(package_source.split('?').first))
    remote_file local do
      source package_source
      checksum rolesh['package_file']['checksum'] if rolesh['package_file']['checksum']
      mode '0644'
    end
  end

  case node['platform_family']
  when 'debian'
    dpkg_package rolesh['package_name'] do
      source local
    end
  when 'rhel', 'fedora', 'amazon', 'suse'
    # dnf/yum resolve the package's dependencies, rpm_package would not.
    package rolesh['package_name'] do
      source local
    end
  else
    raise "rolesh: no package file support for platform family #{node['platform_family']}"
  end
when 'none'
  log 'rolesh: install_method none, the package is managed elsewhere' do
    level :debug
  end
else
  raise "rolesh: unknown install_method #{rolesh['install_method'].inspect} (repository | package_file | none)"
end

# ------------------------------------------------------------------ config
directory config_dir do
  owner 'root'
  group 'root'
  mode '0755'
end

directory ::File.join(config_dir, 'config.d') do
  owner 'root'
  group 'root'
  mode '0755'
end

# rolesh refuses a config not owned by root or writable by group/others.
# `rolesh check --config FILE` checks the candidate file alone; each
# rolesh_user drop-in is checked against the whole configuration.
template ::File.join(config_dir, 'config.toml') do
  source 'config.toml.erb'
  owner 'root'
  group 'root'
  mode '0644'
  helpers(RoleshCookbook::TomlHelpers)
  variables(RoleshCookbook::Config.config_variables(rolesh))
  verify "#{binary} check --config %{path}"
  notifies :reload, "service[#{rolesh['services']['broker']}]", :delayed
end

# ------------------------------------------------------------------ logs
audit = rolesh['config']['audit'] || {}
system_user = rolesh['system_user']

if audit['file']
  directory ::File.dirname(audit['file']) do
    owner system_user
    group system_user
    mode '0750'
  end
end

if audit['recordings_dir'] && rolesh['manage_recordings_dir']
  # Written by the broker as the rolesh user, so a recorded user cannot alter it.
  directory audit['recordings_dir'] do
    owner system_user
    group system_user
    mode '0750'
    recursive true
  end
end

if rolesh['logrotate']['manage']
  logrotate = RoleshCookbook::Config.logrotate_variables(rolesh)
  template rolesh['logrotate']['path'] do
    source 'logrotate.erb'
    owner 'root'
    group 'root'
    mode '0644'
    variables(logrotate)
    action logrotate[:files].empty? ? :delete : :create
  end
end

# ------------------------------------------------------------------ services
service rolesh['services']['broker_socket'] do
  action [:enable, :start]
end

service rolesh['services']['broker'] do
  supports restart: true, reload: true, status: true
  action [:enable, :start]
end

# The session monitor (root) starts and ends every login. It reads no configuration (it
# asks the broker about each login), so nothing here reloads or restarts it; the package
# restarts it on upgrade, and a restart leaves running sessions alone (KillMode=process).
service rolesh['services']['monitor_socket'] do
  action [:enable, :start]
end

service rolesh['services']['monitor'] do
  supports restart: true, status: true
  action [:enable, :start]
end

service rolesh['services']['imds_guard'] do
  action rolesh['imds_guard'] ? [:enable, :start] : [:disable, :stop]
end

# ------------------------------------------------------------------ sshd
sshd = rolesh['sshd']
if sshd['manage']
  group rolesh['users_group'] do
    gid rolesh['users_group_gid'] if rolesh['users_group_gid']
  end

  ruby_block 'sshd_config includes sshd_config.d' do
    block do
      path = sshd['config']
      text = ::File.read(path)
      ::File.write(path, "Include #{::File.dirname(sshd['dropin'])}/*.conf\n#{text}")
    end
    only_if { sshd['ensure_include'] && ::File.exist?(sshd['config']) }
    not_if do
      dir = ::Regexp.escape(::File.dirname(sshd['dropin']))
      ::File.exist?(sshd['config']) &&
        ::File.read(sshd['config']).match?(%r{^\s*Include\s+#{dir}/\*\.conf\s*$}i)
    end
    notifies :run, 'execute[sshd -t]', :immediately
  end

  directory ::File.dirname(sshd['dropin']) do
    owner 'root'
    group 'root'
    mode '0755'
  end

  template sshd['dropin'] do
    source 'sshd-rolesh.conf.erb'
    owner 'root'
    group 'root'
    mode '0644'
    variables(RoleshCookbook::Config.sshd_variables(rolesh))
    # The drop-in alone, then (execute below) the whole sshd configuration.
    verify "#{sshd['binary']} -t -f %{path}"
    notifies :run, 'execute[sshd -t]', :immediately
  end

  execute 'sshd -t' do
    command "#{sshd['binary']} -t -f #{sshd['config']}"
    action :nothing
    notifies :reload, "service[#{sshd['service']}]", :delayed
  end

  service sshd['service'] do
    supports reload: true, restart: true, status: true
    action :nothing
  end
end

# ------------------------------------------------------------------ users
include_recipe 'rolesh::users' if rolesh['manage_users']
