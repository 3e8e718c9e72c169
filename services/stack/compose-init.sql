-- docker-compose only: the same two roles as services/stack/stack.sh creates for the local cluster.
CREATE ROLE countersign_owner LOGIN CREATEDB PASSWORD 'countersign_owner';
CREATE ROLE countersign_app LOGIN PASSWORD 'countersign_app';
CREATE DATABASE countersign OWNER countersign_owner;
