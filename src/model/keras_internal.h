/* Internals of the Keras importer (include/fxscreen/keras.h):
 *   keras_file.c  the files: HDF5 as `model.save("x.h5")` writes it (tf.keras
 *                 2.x and Keras 3's legacy format) and `.keras` zip archives
 *                 (config.json + model.weights.h5, read from memory), and
 *                 the weights of a layer from either;
 *   keras.c       the model config (JSON) -> graph nodes, layer by layer.
 * Prefix kr_. */
#ifndef FX_MODEL_KERAS_INTERNAL_H
#define FX_MODEL_KERAS_INTERNAL_H

#include "fxscreen/graph.h"
#include "fxscreen/status.h"

/* Where a layer's weights are: its name, the name of the top-level layer
 * that holds it (itself, or the nested model it is in: legacy HDF5 files
 * keep a nested model's weights in one group), and its path in a .keras
 * weights file ("layers/functional/layers/conv2d"). */
typedef struct kr_layer_ref {
    const char *name, *top, *kpath;
} kr_layer_ref;

/* A source of weights: the file's, or (for the fuzzer) zeros of the shape
 * the builder expects.  get: weight i of the layer as float32 into a
 * malloc'd buffer and its shape (Keras order); FX_ERR_FORMAT naming the
 * layer when there is no such weight. */
typedef struct kr_weights {
    fx_status (*get)(struct kr_weights *w, const kr_layer_ref *ref, int i, const fx_shape *expect,
                     float **data, fx_shape *shape, fx_error *err);
} kr_weights;

/* A model config ({"class_name": "Sequential"|"Functional"|"Model", "config":
 * {...}}, as model_config or config.json hold it) into a new graph whose
 * weights come from w.  keras_major: 2 or 3 (hard_sigmoid's definition
 * changed).  The graph's input is NCHW float32 (channels_last converted,
 * weights transposed once); a final sigmoid or softmax is left out, so the
 * output is the logits the screening core expects. */
fx_status kr_build(const char *json, size_t n, int keras_major, kr_weights *w, fx_graph **out,
                   fx_error *err);

/* ---- the builder's state, shared by keras.c and keras_layers.c ------------------- */

#include <cjson/cJSON.h>

#define KR_NAME 256

typedef struct kt {             /* a Keras tensor */
    char name[KR_NAME];         /* the graph tensor */
    int rank;                   /* Keras rank, batch included */
    int64_t d[FX_OPS_MAX_RANK]; /* Keras dims (NHWC for rank 4), -1 unknown */
    char pre[KR_NAME];          /* the tensor before a final sigmoid/softmax, or "" */
} kt;

typedef struct kt_entry {
    char *key; /* "<scope>|<layer>|<node>|<tensor>" */
    kt t;
} kt_entry;

/* The builder's state. */
typedef struct kb {
    fx_graph *g;
    kr_weights *w;
    int major;
    fx_error *err;
    kt_entry *tab;
    int ntab, cap;
    int made;          /* made-up names */
    char *unsupported; /* the first pass's list */
    size_t un_len;
    int n_unsupported;
} kb;

/* One call of a layer on its inputs. */
typedef struct call {
    const char *cls, *name;
    const cJSON *cfg;
    kr_layer_ref ref;
    const kt *in;
    int n_in;
    kt *out;
    int has_scalar, scalar_first; /* a number among the arguments (Keras 3's ops) */
    double scalar;
} call;

static inline const cJSON *kr_item(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static inline const char *kr_str(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(kr_item(o, k));
}

static inline double kr_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = kr_item(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static inline int kr_bool(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = kr_item(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* An int or a list of two ints (kernel_size, strides, ...); -1 if neither. */

/* One layer (not a nested model) applied: nodes added, c->out filled (its
 * name is set by the caller).  FX_ERR_UNSUPPORTED / FX_ERR_FORMAT naming
 * the layer. */
fx_status kr_layer(kb *b, call *c);
/* A layer config's activation name (a string, or {"class_name": ...}). */
const char *kr_act_name(const cJSON *cfg);
/* 1 if the activation name is one kr_layer knows (NULL: none). */
int kr_act_known(const char *a);

#endif
