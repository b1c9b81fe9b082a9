# Attachments bucket. Objects are private; browsers upload and download with presigned URLs
# the app hands out, so the bucket needs CORS for the web app's origins but no public access.
# Keys are built by the server (`<workspace>/<document>/<attachment id>`).

resource "aws_s3_bucket" "attachments" {
  bucket        = var.attachments_bucket_name != "" ? var.attachments_bucket_name : null
  bucket_prefix = var.attachments_bucket_name == "" ? "${var.name}-attachments-" : null

  # A protected stack keeps its attachments even on `terraform destroy`.
  force_destroy = !var.deletion_protection
}

resource "aws_s3_bucket_public_access_block" "attachments" {
  bucket = aws_s3_bucket.attachments.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, whatever a presigned upload sends.
resource "aws_s3_bucket_ownership_controls" "attachments" {
  bucket = aws_s3_bucket.attachments.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-S3: encrypted at rest without a KMS key policy to manage or per-request KMS charges. With
# SSE-KMS the task role would also need kms:GenerateDataKey/kms:Decrypt on the key.
resource "aws_s3_bucket_server_side_encryption_configuration" "attachments" {
  bucket = aws_s3_bucket.attachments.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Presigned PUT (and POST-policy) uploads and fetch()-based downloads from the web app. ETag is
# exposed because multipart uploads need each part's ETag to complete.
resource "aws_s3_bucket_cors_configuration" "attachments" {
  bucket = aws_s3_bucket.attachments.id

  cors_rule {
    allowed_origins = var.app_origins
    allowed_methods = ["PUT", "POST", "GET", "HEAD"]
    allowed_headers = ["*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3600
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "attachments" {
  bucket = aws_s3_bucket.attachments.id

  # Abandoned multipart uploads are invisible in listings but billed as storage.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

# Refuse plain-HTTP access, including presigned URLs someone rewrote to http://.
resource "aws_s3_bucket_policy" "attachments" {
  bucket = aws_s3_bucket.attachments.id
  policy = data.aws_iam_policy_document.attachments_bucket.json

  # S3 rejects concurrent changes to a bucket's policy and public access block; order them.
  depends_on = [aws_s3_bucket_public_access_block.attachments]
}

data "aws_iam_policy_document" "attachments_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.attachments.arn,
      "${aws_s3_bucket.attachments.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
