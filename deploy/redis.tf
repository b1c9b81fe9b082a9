# ElastiCache Redis 7 for presence, cross-instance fan-out (pub/sub) and rate limits. Cluster
# mode is off: one primary with replicas is plenty for this load, and pub/sub and the app's
# keys need no slot routing. Everything stored here is short-lived (TTLs, live messages), so
# there are no snapshots.
#
# No AUTH token: only the app's security group can reach the nodes, and TLS in transit is
# required. Adding one would make REDIS_URL a secret (move it to Secrets Manager then).

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Redis, from the app tasks only"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.name}-redis"
  }
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_app" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from the app tasks"
  referenced_security_group_id = aws_security_group.app.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_subnet_group" "main" {
  name       = var.name
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_elasticache_replication_group" "main" {
  replication_group_id = var.name
  description          = "MD Creator presence, fan-out and rate limits"

  engine               = "redis"
  engine_version       = "7.1"
  parameter_group_name = "default.redis7"
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_num_cache_clusters
  port                 = 6379

  subnet_group_name  = aws_elasticache_subnet_group.main.name
  security_group_ids = [aws_security_group.redis.id]

  # With a replica in the other zone, a failed primary is replaced within about a minute; the
  # app's Redis client reconnects to the same primary endpoint name.
  automatic_failover_enabled = var.redis_num_cache_clusters > 1
  multi_az_enabled           = var.redis_num_cache_clusters > 1

  at_rest_encryption_enabled = true
  transit_encryption_enabled = true # clients must use rediss://

  snapshot_retention_limit   = 0
  auto_minor_version_upgrade = true
  maintenance_window         = "sun:05:30-sun:06:30"
  apply_immediately          = false
}
