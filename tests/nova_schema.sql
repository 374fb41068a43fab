-- nova's own table layout (nova 34, PostgreSQL) for the tables `fastnova import-nova` reads.
--
-- Written from nova/db/api/models.py and nova/db/main/models.py (openstack/nova 00a0304):
-- same table and column names, types and nullability, the indexes that matter for reading.
-- Columns the importer never reads are kept where they are cheap, so that rows can be filled
-- exactly as nova writes them.  Two sections: "-- @api" (the API database) and "-- @cell" (each
-- cell database, cell0 included); the tests load each section into its own schema.
--
-- nova conventions kept here: soft delete is "deleted" = 0 for a live row and = id for a deleted
-- one (SoftDeleteMixin); times are naive UTC "timestamp without time zone"; JSON columns
-- (instance_extra.flavor, instance_info_caches.network_info, build_requests.instance,
-- request_specs.spec) are Text/MediumText holding oslo.serialization JSON.

-- @api
CREATE TABLE cell_mappings (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    uuid varchar(36) NOT NULL,
    name varchar(255),
    transport_url text,
    database_connection text,
    disabled boolean DEFAULT false,
    CONSTRAINT uniq_cell_mappings0uuid UNIQUE (uuid)
);

CREATE TABLE instance_mappings (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) NOT NULL,
    cell_id integer REFERENCES cell_mappings (id),
    project_id varchar(255) NOT NULL,
    user_id varchar(255),
    queued_for_delete boolean DEFAULT false,
    CONSTRAINT uniq_instance_mappings0instance_uuid UNIQUE (instance_uuid)
);
CREATE INDEX project_id_idx ON instance_mappings (project_id);

CREATE TABLE build_requests (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    instance_uuid varchar(36),
    project_id varchar(255) NOT NULL,
    instance text,
    block_device_mappings text,
    tags text,
    CONSTRAINT uniq_build_requests0instance_uuid UNIQUE (instance_uuid)
);

CREATE TABLE request_specs (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) NOT NULL,
    spec text NOT NULL,
    CONSTRAINT uniq_request_specs0instance_uuid UNIQUE (instance_uuid)
);

CREATE TYPE keypair_types AS ENUM ('ssh', 'x509');
CREATE TABLE key_pairs (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL,
    user_id varchar(255) NOT NULL,
    fingerprint varchar(255),
    public_key text,
    type keypair_types NOT NULL DEFAULT 'ssh',
    CONSTRAINT uniq_key_pairs0user_id0name UNIQUE (user_id, name)
);

CREATE TABLE flavors (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL,
    memory_mb integer NOT NULL,
    vcpus integer NOT NULL,
    root_gb integer,
    ephemeral_gb integer,
    flavorid varchar(255) NOT NULL,
    swap integer NOT NULL DEFAULT 0,
    rxtx_factor double precision DEFAULT 1,
    vcpu_weight integer,
    disabled boolean DEFAULT false,
    is_public boolean DEFAULT true,
    description text,
    CONSTRAINT uniq_flavors0flavorid UNIQUE (flavorid),
    CONSTRAINT uniq_flavors0name UNIQUE (name)
);

CREATE TABLE flavor_extra_specs (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    key varchar(255) NOT NULL,
    value varchar(255),
    flavor_id integer NOT NULL REFERENCES flavors (id),
    CONSTRAINT uniq_flavor_extra_specs0flavor_id0key UNIQUE (flavor_id, key)
);

CREATE TABLE flavor_projects (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    flavor_id integer NOT NULL REFERENCES flavors (id),
    project_id varchar(255) NOT NULL,
    CONSTRAINT uniq_flavor_projects0flavor_id0project_id UNIQUE (flavor_id, project_id)
);

CREATE TABLE instance_groups (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    user_id varchar(255),
    project_id varchar(255),
    uuid varchar(36) NOT NULL,
    name varchar(255),
    CONSTRAINT uniq_instance_groups0uuid UNIQUE (uuid)
);

CREATE TABLE instance_group_member (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    instance_uuid varchar(255),
    group_id integer NOT NULL REFERENCES instance_groups (id)
);
CREATE INDEX instance_group_member_instance_idx ON instance_group_member (instance_uuid);

CREATE TABLE instance_group_policy (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    policy varchar(255),
    group_id integer NOT NULL REFERENCES instance_groups (id),
    rules text
);

CREATE TABLE quotas (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    project_id varchar(255),
    resource varchar(255) NOT NULL,
    hard_limit integer,
    CONSTRAINT uniq_quotas0project_id0resource UNIQUE (project_id, resource)
);

CREATE TABLE project_user_quotas (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    project_id varchar(255) NOT NULL,
    user_id varchar(255) NOT NULL,
    resource varchar(255) NOT NULL,
    hard_limit integer,
    CONSTRAINT uniq_project_user_quotas0user_id0project_id0resource
        UNIQUE (user_id, project_id, resource)
);

CREATE TABLE aggregates (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    uuid varchar(36),
    name varchar(255),
    CONSTRAINT uniq_aggregate0name UNIQUE (name)
);

CREATE TABLE aggregate_hosts (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    host varchar(255),
    aggregate_id integer NOT NULL REFERENCES aggregates (id),
    CONSTRAINT uniq_aggregate_hosts0host0aggregate_id UNIQUE (host, aggregate_id)
);

CREATE TABLE aggregate_metadata (
    created_at timestamp, updated_at timestamp,
    id serial PRIMARY KEY,
    key varchar(255) NOT NULL,
    value varchar(255) NOT NULL,
    aggregate_id integer NOT NULL REFERENCES aggregates (id),
    CONSTRAINT uniq_aggregate_metadata0aggregate_id0key UNIQUE (aggregate_id, key)
);

-- @cell
CREATE TABLE services (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    uuid varchar(36),
    host varchar(255),
    "binary" varchar(255),
    topic varchar(255),
    report_count integer NOT NULL DEFAULT 0,
    disabled boolean DEFAULT false,
    disabled_reason varchar(255),
    last_seen_up timestamp,
    forced_down boolean DEFAULT false,
    version integer DEFAULT 0,
    CONSTRAINT uniq_services0host0binary0deleted UNIQUE (host, "binary", deleted)
);

CREATE TYPE instances0locked_by AS ENUM ('owner', 'admin');
CREATE TABLE instances (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    internal_id integer,
    user_id varchar(255),
    project_id varchar(255),
    image_ref varchar(255),
    kernel_id varchar(255),
    ramdisk_id varchar(255),
    launch_index integer,
    key_name varchar(255),
    key_data text,
    power_state integer,
    vm_state varchar(255),
    memory_mb integer,
    vcpus integer,
    hostname varchar(255),
    host varchar(255),
    user_data text,
    reservation_id varchar(255),
    launched_at timestamp,
    terminated_at timestamp,
    display_name varchar(255),
    display_description varchar(255),
    availability_zone varchar(255),
    locked boolean,
    os_type varchar(255),
    launched_on text,
    instance_type_id integer,
    vm_mode varchar(255),
    uuid varchar(36) NOT NULL,
    architecture varchar(255),
    root_device_name varchar(255),
    access_ip_v4 inet,
    access_ip_v6 inet,
    config_drive varchar(255),
    task_state varchar(255),
    default_ephemeral_device varchar(255),
    default_swap_device varchar(255),
    progress integer,
    auto_disk_config boolean,
    shutdown_terminate boolean DEFAULT false,
    disable_terminate boolean DEFAULT false,
    root_gb integer,
    ephemeral_gb integer,
    cell_name varchar(255),
    node varchar(255),
    ephemeral_key_uuid varchar(36),
    locked_by instances0locked_by,
    cleaned integer DEFAULT 0,
    hidden boolean DEFAULT false,
    compute_id bigint,
    CONSTRAINT uniq_instances0uuid UNIQUE (uuid)
);
CREATE INDEX instances_project_id_deleted_idx ON instances (project_id, deleted);
CREATE INDEX instances_deleted_created_at_idx ON instances (deleted, created_at);
CREATE INDEX instances_host_node_deleted_idx ON instances (host, node, deleted);
CREATE INDEX instances_updated_at_project_id_idx ON instances (updated_at, project_id);

CREATE TABLE instance_extra (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) NOT NULL REFERENCES instances (uuid),
    device_metadata text,
    numa_topology text,
    pci_requests text,
    flavor text,
    vcpu_model text,
    migration_context text,
    keypairs text,
    trusted_certs text,
    resources text
);
CREATE INDEX instance_extra_idx ON instance_extra (instance_uuid);

CREATE TABLE instance_info_caches (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    network_info text,
    instance_uuid varchar(36) NOT NULL REFERENCES instances (uuid),
    CONSTRAINT uniq_instance_info_caches0instance_uuid UNIQUE (instance_uuid)
);

CREATE TABLE instance_metadata (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    key varchar(255),
    value varchar(255),
    instance_uuid varchar(36) REFERENCES instances (uuid)
);
CREATE INDEX instance_metadata_instance_uuid_idx ON instance_metadata (instance_uuid);

CREATE TABLE instance_system_metadata (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) NOT NULL REFERENCES instances (uuid),
    key varchar(255) NOT NULL,
    value varchar(255)
);
CREATE INDEX instance_uuid ON instance_system_metadata (instance_uuid);

CREATE TABLE tags (
    resource_id varchar(36) NOT NULL,
    tag varchar(80) NOT NULL,
    PRIMARY KEY (resource_id, tag)
);
CREATE INDEX tags_tag_idx ON tags (tag);

CREATE TABLE instance_faults (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) REFERENCES instances (uuid),
    code integer NOT NULL,
    message varchar(255),
    details text,
    host varchar(255)
);
CREATE INDEX instance_faults_instance_uuid_deleted_created_at_idx
    ON instance_faults (instance_uuid, deleted, created_at);

CREATE TABLE block_device_mapping (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    instance_uuid varchar(36) REFERENCES instances (uuid),
    uuid varchar(36),
    source_type varchar(255),
    destination_type varchar(255),
    guest_format varchar(255),
    device_type varchar(255),
    disk_bus varchar(255),
    boot_index integer,
    device_name varchar(255),
    delete_on_termination boolean DEFAULT false,
    snapshot_id varchar(36),
    volume_id varchar(36),
    volume_size integer,
    volume_type varchar(255),
    image_id varchar(36),
    no_device boolean,
    connection_info text,
    tag varchar(255),
    attachment_id varchar(36),
    encrypted boolean DEFAULT false,
    encryption_secret_uuid varchar(36),
    encryption_format varchar(128),
    encryption_options varchar(4096),
    CONSTRAINT uniq_block_device_mapping0uuid UNIQUE (uuid)
);
CREATE INDEX block_device_mapping_instance_uuid_idx ON block_device_mapping (instance_uuid);

CREATE TABLE instance_actions (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    action varchar(255),
    instance_uuid varchar(36),
    request_id varchar(255),
    user_id varchar(255),
    project_id varchar(255),
    start_time timestamp,
    finish_time timestamp,
    message varchar(255)
);
CREATE INDEX instance_uuid_idx ON instance_actions (instance_uuid);
CREATE INDEX request_id_idx ON instance_actions (request_id);

CREATE TABLE instance_actions_events (
    created_at timestamp, updated_at timestamp, deleted_at timestamp, deleted integer DEFAULT 0,
    id serial PRIMARY KEY,
    event varchar(255),
    action_id integer REFERENCES instance_actions (id),
    start_time timestamp,
    finish_time timestamp,
    result varchar(255),
    traceback text,
    host varchar(255),
    details text
);
