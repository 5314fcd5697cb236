# Policyfile for Test Kitchen (kitchen.yml) and for trying the cookbook alone.
name 'rolesh'
default_source :supermarket
run_list 'rolesh::default'
named_run_list :users, 'rolesh::default', 'rolesh::users'
cookbook 'rolesh', path: '.'
