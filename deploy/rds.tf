# PostgreSQL 16 on RDS in the private subnets, reachable only from the app's security group.
#
# About the password: RDS can manage the master password in Secrets Manager by itself
# (manage_master_user_password), but that secret holds only {username, password} and RDS
# rotates it every 7 days, while the app reads one DATABASE_URL at task start. A URL copied
# from it would go stale at the first rotation and break new connections. So Terraform
# generates the password and keeps the whole DATABASE_URL in a Secrets Manager secret that
# ECS injects; rotate by tainting random_password.db, applying, and redeploying.

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL, from the app tasks only"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.name}-db"
  }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_app" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the app and migration tasks"
  referenced_security_group_id = aws_security_group.app.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_subnet_group" "main" {
  name       = var.name
  subnet_ids = aws_subnet.private[*].id
}

# Letters and digits only, so it can go into a URL without percent-encoding.
resource "random_password" "db" {
  length  = 40
  special = false
}

resource "aws_db_instance" "main" {
  identifier = var.name

  engine         = "postgres"
  engine_version = "16" # latest 16.x; minor upgrades are applied in the maintenance window
  instance_class = var.db_instance_class

  db_name  = "mdcreator"
  username = "mdcreator"
  password = random_password.db.result
  port     = 5432

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true

  multi_az               = var.db_multi_az
  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false

  backup_retention_period    = var.db_backup_retention_days
  backup_window              = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  auto_minor_version_upgrade = true
  copy_tags_to_snapshot      = true

  performance_insights_enabled    = true
  enabled_cloudwatch_logs_exports = ["postgresql"]

  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = !var.deletion_protection
  final_snapshot_identifier = "${var.name}-final"

  # Changes that need a restart wait for the maintenance window instead of happening mid-day.
  apply_immediately = false
}

# DATABASE_URL for the app. PostgreSQL 15+ on RDS refuses plaintext connections
# (rds.force_ssl = 1 by default); sslmode=require encrypts without verifying the server
# certificate, as verify-full would need the RDS CA bundle in the image.
resource "aws_secretsmanager_secret" "database_url" {
  name        = "${var.name}/database-url"
  description = "DATABASE_URL for the MD Creator server"
}

resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id = aws_secretsmanager_secret.database_url.id
  secret_string = format(
    "postgres://%s:%s@%s:%d/%s?sslmode=require",
    aws_db_instance.main.username,
    random_password.db.result,
    aws_db_instance.main.address,
    aws_db_instance.main.port,
    aws_db_instance.main.db_name,
  )
}
