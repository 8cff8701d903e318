#include <nnic/train.h>

#include <math.h>

double
nnic_lr_schedule_at (const NnicLrSchedule *s, double base_lr, int epoch)
{
  if (!s)
    return base_lr;
  switch (s->kind) {
  case NNIC_LR_STEP:
    return s->step_size > 0 ? base_lr * pow (s->gamma, epoch / s->step_size) : base_lr;
  case NNIC_LR_COSINE:
    if (s->t_max <= 0)
      return base_lr;
    return s->eta_min + (base_lr - s->eta_min) * (1.0 + cos (G_PI * epoch / s->t_max)) / 2.0;
  case NNIC_LR_CONSTANT:
  default:
    return base_lr;
  }
}
