output "alb_dns_name" {
  description = "DNS name of the load balancer: point the host name of public_url at it (CNAME, or a Route 53 alias with alb_zone_id)."
  value       = aws_lb.main.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone id of the load balancer, for a Route 53 alias record."
  value       = aws_lb.main.zone_id
}

output "ecr_repository_url" {
  description = "Repository the deploy workflow pushes images to."
  value       = aws_ecr_repository.app.repository_url
}

output "ecs_cluster_name" {
  value = aws_ecs_cluster.main.name
}

output "ecs_service_name" {
  value = aws_ecs_service.app.name
}

output "app_task_definition_family" {
  value = aws_ecs_task_definition.app.family
}

output "migrate_task_definition_family" {
  value = aws_ecs_task_definition.migrate.family
}

output "log_group_name" {
  description = "CloudWatch log group of the app and migration tasks."
  value       = aws_cloudwatch_log_group.app.name
}

output "private_subnet_ids" {
  value = aws_subnet.private[*].id
}

output "app_security_group_id" {
  value = aws_security_group.app.id
}

output "database_endpoint" {
  value = aws_db_instance.main.endpoint
}

output "database_url_secret_arn" {
  value = aws_secretsmanager_secret.database_url.arn
}

output "redis_endpoint" {
  value = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "attachments_bucket" {
  value = aws_s3_bucket.attachments.bucket
}

output "cognito_user_pool_id" {
  value = aws_cognito_user_pool.main.id
}

output "cognito_client_id" {
  value = aws_cognito_user_pool_client.app.id
}

output "github_deploy_role_arn" {
  description = "Role the deploy workflow assumes (null unless github_repository is set)."
  value       = one(aws_iam_role.github_deploy[*].arn)
}

output "github_actions_variables" {
  description = "Repository or `production` environment variables for .github/workflows/deploy.yml."
  value = {
    AWS_REGION          = var.aws_region
    AWS_DEPLOY_ROLE_ARN = one(aws_iam_role.github_deploy[*].arn)
    ECR_REPOSITORY      = aws_ecr_repository.app.name
    ECS_CLUSTER         = aws_ecs_cluster.main.name
    ECS_SERVICE         = aws_ecs_service.app.name
    ECS_PRIVATE_SUBNETS = join(",", aws_subnet.private[*].id)
    ECS_SECURITY_GROUP  = aws_security_group.app.id
  }
}
