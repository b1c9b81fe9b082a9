# ---------------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region for every resource."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix for resources. The task definition families are `<name>` and `<name>-migrate`; the deploy workflow expects the default."
  type        = string
  default     = "mdcreator"

  validation {
    # ALB and target group names allow 32 characters; "-app" is appended to the latter.
    condition     = can(regex("^[a-z][a-z0-9-]{1,27}$", var.name))
    error_message = "name must be 2-28 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name, used in tags and as the GitHub environment allowed to deploy."
  type        = string
  default     = "production"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Protect the ALB, the database and the Cognito user pool from deletion (and take a final database snapshot). Turn off only to tear down a test stack."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Network and edge
# ---------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Public subnets get /24s at its start, private subnets /20s (room for many Fargate tasks)."
  type        = string
  default     = "10.0.0.0/16"
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for both private subnets instead of one per availability zone. Cheaper, but outbound traffic (Cognito, Secrets Manager, ECR) stops if that zone fails."
  type        = bool
  default     = false
}

variable "acm_certificate_arn" {
  description = "ARN of an issued ACM certificate (same region) for the HTTPS listener, covering the host name in public_url."
  type        = string
}

variable "public_url" {
  description = "Public base URL of the API as clients see it, e.g. https://api.mdcreator.example (MDCREATOR_PUBLIC_URL). Point its DNS name at the ALB."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+$", var.public_url))
    error_message = "public_url must be an https:// origin without a trailing slash or path."
  }
}

variable "app_origins" {
  description = "Browser origins of the web app, e.g. [\"https://app.mdcreator.example\"]. Used for CORS, WebSocket Origin checks (MDCREATOR_ALLOWED_ORIGINS) and the S3 upload CORS rule."
  type        = list(string)

  validation {
    condition     = length(var.app_origins) > 0 && alltrue([for o in var.app_origins : can(regex("^https?://[^/]+$", o))])
    error_message = "app_origins must be a non-empty list of origins like https://app.example.com (scheme and host, no path)."
  }
}

# ---------------------------------------------------------------------------------------------
# Application (ECS)
# ---------------------------------------------------------------------------------------------

variable "app_image_tag" {
  description = "Image tag in the ECR repository used by the task definitions Terraform registers. Releases don't change it: the deploy workflow registers new revisions with the commit's image."
  type        = string
  default     = "bootstrap"
}

variable "app_cpu" {
  description = "Fargate CPU units per app task (256, 512, 1024, 2048, 4096)."
  type        = number
  default     = 512
}

variable "app_memory" {
  description = "Memory (MiB) per app task; must be a valid Fargate combination with app_cpu."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Number of app tasks at creation, and the autoscaling minimum. Two or more keeps the service up through a zone failure and a deployment."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Autoscaling maximum of app tasks."
  type        = number
  default     = 6
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the service is scaled to keep."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Days to keep the app's CloudWatch logs (must be a value CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, ...)."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------------------------
# Data stores
# ---------------------------------------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial storage (GiB) of the database."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Upper bound (GiB) for RDS storage autoscaling."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "Run the database with a synchronous standby in a second zone (automatic failover)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes (one primary plus replicas). Two or more enables automatic failover across zones."
  type        = number
  default     = 2
}

variable "attachments_bucket_name" {
  description = "Name of the attachments bucket. Empty: a unique name starting with `<name>-attachments-` is generated."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------------
# GitHub Actions deployment
# ---------------------------------------------------------------------------------------------

variable "github_repository" {
  description = "`owner/name` of the GitHub repository whose deploy workflow may assume the deploy role. Empty: no deploy role is created."
  type        = string
  default     = ""
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing GitHub Actions OIDC provider in this account (there can be only one per account). Empty: one is created."
  type        = string
  default     = ""
}
