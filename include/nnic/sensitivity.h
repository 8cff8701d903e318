/* nnic — sensitivity analysis (NNI's SensitivityAnalysis): how a model's
 * score falls as each layer alone is pruned to a range of sparsities. */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/model.h>

G_BEGIN_DECLS

/* Scores the model as it is (accuracy, or any higher-is-better number). */
typedef gboolean (*NnicEvaluatorFn) (NnicModel *m, double *score, gpointer user_data, GError **error);

typedef struct {
  double baseline;       /* the score of the unpruned model */
  GPtrArray *layers;     /* char *, the layers analysed, in model order */
  GArray *sparsities;    /* double */
  GArray *scores;        /* double, [layer][sparsity], row-major */
} NnicSensitivity;

/* Prunes each layer alone with `masker` (one-shot, `sparsity` and
 * `op_names` = [layer]) at each sparsity, scores the model with
 * `evaluate`, and restores the weights before the next. `layers` NULL
 * means every Conv2d (NNI's default); `sparsities` NULL means 0.1, 0.2, ...,
 * 0.9. `progress`, when non-NULL, is told each result. The model ends as it
 * started. */
typedef void (*NnicSensitivityProgress) (const char *layer, double sparsity, double score,
                                         gpointer user_data);
NNIC_API NnicSensitivity *nnic_sensitivity_analysis (NnicModel *m, const char *masker,
                                                     const char *const *layers,
                                                     const double *sparsities, guint n_sparsities,
                                                     NnicEvaluatorFn evaluate,
                                                     gpointer evaluate_data,
                                                     NnicSensitivityProgress progress,
                                                     gpointer progress_data, GError **error);
NNIC_API void nnic_sensitivity_free (NnicSensitivity *s);
NNIC_API double nnic_sensitivity_score (const NnicSensitivity *s, guint layer, guint sparsity);
/* NNI's CSV: a header "layername,0.1,0.2,..." then one row per layer. */
NNIC_API gboolean nnic_sensitivity_save_csv (const NnicSensitivity *s, const char *path,
                                             GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicSensitivity, nnic_sensitivity_free)

G_END_DECLS
