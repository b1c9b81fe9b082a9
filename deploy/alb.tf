# Public Application Load Balancer. WebSocket upgrades need no special setup on an ALB: the
# upgraded connection stays pinned to the target that accepted it, so stickiness is not needed
# for collaboration (instances share rooms through Redis anyway).

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public HTTP/HTTPS to the load balancer"
  vpc_id      = aws_vpc.main.id

  tags = {
    Name = "${var.name}-alb"
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from anywhere"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from anywhere, redirected to HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_app" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the app tasks"
  referenced_security_group_id = aws_security_group.app.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_lb" "main" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = aws_subnet.public[*].id

  # Idle WebSockets are kept alive by the server's 30 s pings, well inside this timeout. The
  # server's HTTP keep-alive (~75 s) is longer, so the ALB, not the app, closes idle
  # connections and never sends a request down a connection the app is closing.
  idle_timeout = 60

  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  tags = {
    Name = var.name
  }
}

resource "aws_lb_target_group" "app" {
  name        = "${var.name}-app"
  vpc_id      = aws_vpc.main.id
  target_type = "ip" # Fargate tasks register by ENI address
  protocol    = "HTTP"
  port        = 8080

  # On deregistration (deploy, scale-in) the ALB sends no new connections to the task, and
  # ECS waits this long before stopping it. WebSockets never "finish" on their own, so the
  # default 300 s would only hold every deployment up for five minutes; after SIGTERM the app
  # closes them with 1001 (going away) and clients reconnect to another task.
  deregistration_delay = 30

  # /readyz checks the database and Redis, so a task that lost them stops receiving traffic.
  # If every task fails (a database outage) the ALB fails open and keeps routing to all of
  # them, and the app answers 503 with Retry-After. ECS also replaces tasks that stay
  # unhealthy here, so a long outage means task churn: the price of routing around one task
  # with a broken connection pool. Point this at /healthz instead if that churn hurts more.
  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  stickiness {
    type    = "lb_cookie"
    enabled = false
  }

  tags = {
    Name = "${var.name}-app"
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.main.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.acm_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
