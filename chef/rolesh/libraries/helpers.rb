#
# Cookbook:: rolesh
# Library:: helpers
#
# Plain Ruby with no Chef dependency, so the same code renders the templates
# in a Chef run and in test/render.
#

module RoleshCookbook
  # TOML emitters used by the templates (`helpers(RoleshCookbook::TomlHelpers)`).
  module TomlHelpers
    BARE_KEY = /\A[A-Za-z0-9_-]+\z/.freeze

    # A TOML basic string: "..." with the escapes of TOML 1.0.
    def toml_string(value)
      out = +'"'
      value.to_s.each_char do |c|
        out << case c
               when '"' then '\\"'
               when '\\' then '\\\\'
               when "\b" then '\\b'
               when "\t" then '\\t'
               when "\n" then '\\n'
               when "\f" then '\\f'
               when "\r" then '\\r'
               when /[\u0000-\u001f\u007f]/ then format('\\u%04X', c.ord)
               else c
               end
      end
      out << '"'
    end

    # A key: bare when it may be, else quoted.
    def toml_key(key)
      key = key.to_s
      key.match?(BARE_KEY) ? key : toml_string(key)
    end

    def toml_value(value)
      case value
      when String, Symbol then toml_string(value)
      when true then 'true'
      when false then 'false'
      when Integer then value.to_s
      when Float
        raise ArgumentError, "rolesh: #{value} is not a finite number" unless value.finite?
        value.to_s
      when Array then "[#{value.reject(&:nil?).map { |v| toml_value(v) }.join(', ')}]"
      when Hash
        pairs = value.reject { |_, v| v.nil? }.map { |k, v| "#{toml_key(k)} = #{toml_value(v)}" }
        pairs.empty? ? '{}' : "{ #{pairs.join(', ')} }"
      else
        raise ArgumentError, "rolesh: cannot write #{value.inspect} (#{value.class}) to TOML"
      end
    end

    # `key = value` lines for every non-nil key of hash but those in except.
    # Nested Hashes become inline tables, so unknown keys pass through to
    # `rolesh check` instead of being dropped silently.
    def toml_pairs(hash, except = [])
      return '' if hash.nil?
      except = except.map(&:to_s)
      hash.each_with_object(+'') do |(k, v), out|
        next if v.nil? || except.include?(k.to_s)
        out << "#{toml_key(k)} = #{toml_value(v)}\n"
      end
    end
  end

  # Turning node attributes into what the templates render.
  module Config
    module_function

    # Lists of tables and the key a Hash-form entry's name fills in.
    def table_list(value, name_key, where)
      case value
      when nil then []
      when Array
        value.compact.map do |entry|
          raise ArgumentError, "rolesh: #{where} entries must be Hashes, got #{entry.inspect}" unless entry.is_a?(Hash)
          plain(entry)
        end
      when Hash
        value.each_with_object([]) do |(label, entry), list|
          next if entry.nil? || entry == false
          entry = {} if entry == true
          raise ArgumentError, "rolesh: #{where}[#{label}] must be a Hash, got #{entry.inspect}" unless entry.is_a?(Hash)
          entry = plain(entry)
          entry = { name_key => label.to_s }.merge(entry) if name_key && !entry.key?(name_key)
          list << entry
        end
      else
        raise ArgumentError, "rolesh: #{where} must be an Array or a Hash, got #{value.inspect}"
      end
    end

    # A deep copy with String keys and nil values removed.
    def plain(value)
      case value
      when Hash
        value.each_with_object({}) do |(k, v), h|
          next if v.nil?
          h[k.to_s] = plain(v)
        end
      when Array then value.compact.map { |v| plain(v) }
      when Symbol then value.to_s
      else value
      end
    end

    # node['rolesh']['config'] -> the Hash config.toml.erb renders; it is
    # also exactly what the rendered TOML parses back to.
    def normalize(config)
      cfg = plain(config || {})
      if cfg.key?('mapping')
        cfg['mapping'].delete('users') if cfg['mapping']['users'] == {}
        groups = table_list(config_dig(config, 'mapping', 'groups'), 'group', 'mapping.groups')
        groups.empty? ? cfg['mapping'].delete('groups') : cfg['mapping']['groups'] = groups
      end
      clusters = table_list(config_dig(config, 'cluster'), 'name', 'cluster').map do |cluster|
        namespaces = table_list(cluster['namespace'], 'name', "cluster[#{cluster['name']}].namespace")
        namespaces.empty? ? cluster.delete('namespace') : cluster['namespace'] = namespaces
        cluster
      end
      clusters.empty? ? cfg.delete('cluster') : cfg['cluster'] = clusters
      if cfg.key?('session')
        overrides = table_list(config_dig(config, 'session', 'override'), nil, 'session.override')
        overrides.empty? ? cfg['session'].delete('override') : cfg['session']['override'] = overrides
      end
      cfg
    end

    def config_dig(hash, *keys)
      keys.reduce(hash) { |h, k| h.is_a?(Hash) ? (h[k] || h[k.to_sym]) : nil }
    end

    # Top-level sections in the order of SPEC section 5; others follow.
    SECTIONS = %w(aws mapping cluster session broker audit).freeze

    def config_variables(rolesh)
      { config: normalize(rolesh['config']) }
    end

    def sshd_variables(rolesh)
      sshd = rolesh['sshd'] || {}
      {
        group: sshd['match_group'] || rolesh['users_group'],
        global: plain(sshd['global'] || {}),
        match: plain(sshd['match'] || {}),
      }
    end

    def logrotate_variables(rolesh)
      lr = rolesh['logrotate'] || {}
      file = config_dig(rolesh, 'config', 'audit', 'file')
      {
        files: file ? [file] : [],
        frequency: lr['frequency'] || 'daily',
        rotate: lr['rotate'] || 30,
        copytruncate: lr['copytruncate'] != false,
        postrotate: lr['postrotate'],
        owner: rolesh['system_user'] || 'rolesh',
      }
    end

    # Session keys a rolesh_user (or a users attribute entry) may override.
    OVERRIDE_KEYS = %w(mode shell path allowed_commands file_transfer idle_timeout max_duration banner record exec_command).freeze

    # Kubernetes access levels of a mapping rule (what `rolesh rbac` binds).
    ACCESS_LEVELS = %w(admin poweruser user).freeze

    # Variables of templates/config.d-user.toml.erb, the config.d drop-in
    # 50-user-NAME.toml. attrs: role_arn, access, namespaces and any
    # OVERRIDE_KEYS. :mapping is the user's [mapping.users] value: the role
    # ARN alone, or { role, access, namespaces } when either of the others is
    # set (rolesh's table form needs the role, so they cannot go without it).
    def user_dropin_variables(username, attrs)
      attrs = plain(attrs || {})
      override = {}
      OVERRIDE_KEYS.each { |k| override[k] = attrs[k] unless attrs[k].nil? }
      { user: username.to_s, role_arn: attrs['role_arn'], mapping: user_mapping(username, attrs), override: override }
    end

    def user_mapping(username, attrs)
      role, access, namespaces = attrs.values_at('role_arn', 'access', 'namespaces')
      return role if access.nil? && namespaces.nil?
      if role.nil?
        raise ArgumentError, "rolesh: user #{username}: access and namespaces need a role_arn " \
                             '([mapping.users] NAME = { role, access, namespaces })'
      end
      unless access.nil? || ACCESS_LEVELS.include?(access.to_s)
        raise ArgumentError, "rolesh: user #{username}: access must be one of #{ACCESS_LEVELS.join(', ')}, not #{access.inspect}"
      end
      unless namespaces.nil? || namespaces.is_a?(Array)
        raise ArgumentError, "rolesh: user #{username}: namespaces must be an Array, not #{namespaces.inspect}"
      end
      plain('role' => role, 'access' => access, 'namespaces' => namespaces)
    end

    def user_dropin_name(username)
      "50-user-#{username}.toml"
    end

    # node['rolesh']['users'] merged with the items of the users data bag
    # (attributes win). Returns { name => Hash } with String keys.
    def users(rolesh, data_bag_items = [])
      out = {}
      data_bag_items.each do |item|
        item = plain(item.respond_to?(:to_hash) ? item.to_hash : item)
        name = item.delete('username') || item['id']
        item.delete('id')
        item.delete('chef_type')
        item.delete('data_bag')
        out[name.to_s] = item
      end
      (rolesh['users'] || {}).each do |name, attrs|
        next if attrs.nil? || attrs == false
        out[name.to_s] = (out[name.to_s] || {}).merge(plain(attrs == true ? {} : attrs))
      end
      out
    end
  end

  # Verification of a config.d drop-in: `rolesh check` on a copy of the
  # whole configuration with the candidate in place, since a drop-in alone
  # is not a complete config.
  module Verify
    module_function

    # Returns true when `BINARY check --config COPY` accepts the
    # configuration of config_dir with config.d/name replaced by candidate
    # (a path). Without a config.toml there is nothing to check against.
    def dropin(binary, config_dir, name, candidate, out: $stdout)
      require 'fileutils'
      require 'tmpdir'
      main = File.join(config_dir, 'config.toml')
      return true unless File.exist?(main)

      Dir.mktmpdir('rolesh-verify-') do |dir|
        File.chmod(0o755, dir)
        copy = lambda do |from, to|
          FileUtils.cp(from, to)
          File.chmod(0o644, to)
        end
        copy.call(main, File.join(dir, 'config.toml'))
        FileUtils.mkdir(File.join(dir, 'config.d'), mode: 0o755)
        Dir.glob(File.join(config_dir, 'config.d', '*.toml')).sort.each do |f|
          next if File.basename(f) == name
          copy.call(f, File.join(dir, 'config.d', File.basename(f)))
        end
        copy.call(candidate, File.join(dir, 'config.d', name))
        # --config DIR reads DIR/config.toml, then DIR/config.d/*.toml.
        output = IO.popen([binary, 'check', '--config', dir], err: [:child, :out], &:read)
        out&.print(output.gsub(dir, config_dir))
        $?.success?
      end
    end
  end
end
