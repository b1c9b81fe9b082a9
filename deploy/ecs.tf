# The app on ECS Fargate: image repository, logs, the signing-key secret, the cluster, the
# service behind the ALB with CPU autoscaling, and a second task definition family that runs
# migrations as a one-off task (see .github/workflows/deploy.yml).

# ---------------------------------------------------------------------------------------------
# Image repository
# ---------------------------------------------------------------------------------------------

resource "aws_ecr_repository" "app" {
  name = var.name

  # Releases are tagged with their commit sha; immutable tags guarantee that a task definition
  # revision always runs exactly the image it was registered with (rollbacks included).
  image_tag_mutability = "IMMUTABLE"
  force_delete         = !var.deletion_protection

  image_scanning_configuration {
    scan_on_push = true
  }
}

resource "aws_ecr_lifecycle_policy" "app" {
  repository = aws_ecr_repository.app.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged images (interrupted pushes) after a week"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last 100 releases to roll back to"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = 100
        }
        action = { type = "expire" }
      },
    ]
  })
}

# ---------------------------------------------------------------------------------------------
# Logs and secrets
# ---------------------------------------------------------------------------------------------

# One group for the service and the migration task; stream prefixes ("app", "migrate") keep
# them apart.
resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

# MDCREATOR_SIGNING_KEY: the secret behind what the server signs by itself (short-lived URLs
# and tickets; the built-in accounts' token keys live in the database instead). Generated
# here so no human handles it; rotate with `terraform apply -replace=random_password.signing_key`
# and a redeploy, which invalidates whatever was signed with the old key.
resource "random_password" "signing_key" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "signing_key" {
  name        = "${var.name}/signing-key"
  description = "MDCREATOR_SIGNING_KEY for the MD Creator server"
}

resource "aws_secretsmanager_secret_version" "signing_key" {
  secret_id     = aws_secretsmanager_secret.signing_key.id
  secret_string = random_password.signing_key.result
}

# ---------------------------------------------------------------------------------------------
# Task definitions
# ---------------------------------------------------------------------------------------------

locals {
  app_image = "${aws_ecr_repository.app.repository_url}:${var.app_image_tag}"

  # Both families get the same configuration, so `mdcreator migrate` parses exactly the
  # settings the server runs with.
  app_environment = [
    { name = "MDCREATOR_LISTEN", value = "0.0.0.0:8080" },
    { name = "MDCREATOR_PUBLIC_URL", value = var.public_url },
    { name = "MDCREATOR_ALLOWED_ORIGINS", value = join(",", var.app_origins) },
    { name = "MDCREATOR_LOG_FORMAT", value = "json" },
    # Migrations run once per release as their own task, never from several app tasks racing
    # at start-up.
    { name = "MDCREATOR_AUTO_MIGRATE", value = "false" },
    # rediss:// because the replication group only accepts TLS (see redis.tf).
    { name = "REDIS_URL", value = "rediss://${aws_elasticache_replication_group.main.primary_endpoint_address}:${aws_elasticache_replication_group.main.port}" },
    { name = "MDCREATOR_S3_BUCKET", value = aws_s3_bucket.attachments.bucket },
    { name = "AWS_REGION", value = var.aws_region },
    { name = "MDCREATOR_COGNITO_USER_POOL_ID", value = aws_cognito_user_pool.main.id },
    { name = "MDCREATOR_COGNITO_CLIENT_ID", value = aws_cognito_user_pool_client.app.id },
  ]

  # Injected by ECS at task start (read with the execution role, see iam.tf); they never appear
  # in the task definition itself.
  app_secrets = [
    { name = "DATABASE_URL", valueFrom = aws_secretsmanager_secret.database_url.arn },
    { name = "MDCREATOR_SIGNING_KEY", valueFrom = aws_secretsmanager_secret.signing_key.arn },
  ]

  # Non-blocking mode: if CloudWatch is slow, log lines are buffered (and in the worst case
  # dropped) instead of stalling the app's stdout writes and with them request handling.
  log_options = {
    "awslogs-group"   = aws_cloudwatch_log_group.app.name
    "awslogs-region"  = var.aws_region
    "mode"            = "non-blocking"
    "max-buffer-size" = "25m"
  }
}

resource "aws_ecs_task_definition" "app" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.app_cpu
  memory                   = var.app_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64" # the deploy workflow builds linux/amd64
  }

  container_definitions = jsonencode([
    {
      name      = "app"
      image     = local.app_image
      essential = true

      portMappings = [
        { containerPort = 8080, protocol = "tcp" },
      ]

      environment = local.app_environment
      secrets     = local.app_secrets

      # Same self-check as the image's HEALTHCHECK (distroless has no shell or curl). ECS
      # replaces a task that fails it even if the ALB still considers it healthy.
      healthCheck = {
        command     = ["CMD", "/usr/local/bin/mdcreator", "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }

      # Time between SIGTERM and SIGKILL. The server flushes collaboration rooms and closes
      # sockets with 1001 within this window.
      stopTimeout = 30

      # One descriptor per WebSocket; the default soft limit would cap connections early.
      ulimits = [
        { name = "nofile", softLimit = 65535, hardLimit = 65535 },
      ]

      logConfiguration = {
        logDriver = "awslogs"
        options   = merge(local.log_options, { "awslogs-stream-prefix" = "app" })
      }
    },
  ])

  # The deploy workflow registers a new revision per release; Terraform must not deregister
  # revisions when it replaces its own, or rolling back to them would fail.
  skip_destroy = true
}

# `mdcreator migrate` as a one-off task. The deploy workflow copies the latest revision of this
# family with the release's image and runs it before rolling the service.
resource "aws_ecs_task_definition" "migrate" {
  family                   = "${var.name}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.task_execution.arn
  # No task role: migrating touches only the database, so it gets no AWS permissions at all.

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name        = "migrate"
      image       = local.app_image
      essential   = true
      command     = ["migrate"]
      environment = local.app_environment
      secrets     = local.app_secrets

      logConfiguration = {
        logDriver = "awslogs"
        options   = merge(local.log_options, { "awslogs-stream-prefix" = "migrate" })
      }
    },
  ])

  skip_destroy = true
}

# ---------------------------------------------------------------------------------------------
# Cluster and service
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "main" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# Shared by the app tasks and the migration task (both need the database).
resource "aws_security_group" "app" {
  name        = "${var.name}-app"
  description = "MD Creator tasks"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.name}-app"
  }
}

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  security_group_id            = aws_security_group.app.id
  description                  = "HTTP and WebSocket from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

# Tasks talk to RDS, Redis and AWS APIs (through NAT or the S3 endpoint). The AI proxy calls
# configured provider URLs on the internet, so egress can't be narrowed to AWS ranges.
resource "aws_vpc_security_group_egress_rule" "app_all" {
  security_group_id = aws_security_group.app.id
  description       = "All outbound"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_ecs_service" "app" {
  name             = var.name
  cluster          = aws_ecs_cluster.main.id
  task_definition  = aws_ecs_task_definition.app.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Rolling deployment: start a full set of new tasks before stopping old ones, and roll back
  # automatically if the new ones never get healthy.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Don't let the ALB's health check kill a task that is still starting up.
  health_check_grace_period_seconds = 60

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.app.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.app.arn
    container_name   = "app"
    container_port   = 8080
  }

  lifecycle {
    # Releases change the task definition (deploy workflow) and autoscaling changes the
    # count; Terraform would otherwise undo both on its next apply.
    ignore_changes = [task_definition, desired_count]
  }

  # The target group must be attached to a listener before a service can use it, and tasks
  # can't start until the execution role may read the secrets.
  depends_on = [
    aws_lb_listener.https,
    aws_iam_role_policy.task_execution_secrets,
  ]
}

# ---------------------------------------------------------------------------------------------
# Autoscaling
# ---------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "app" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.app.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.desired_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "app_cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  resource_id        = aws_appautoscaling_target.app.resource_id
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }

    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    # Scaling in stops a task and moves its collaborators to others; do it unhurriedly.
    scale_in_cooldown = 300
  }
}
