/* test_model.c — the model spec loader: repeat expansion and names, widths,
 * parameter counts (closed forms), the shipped specs, and every error class. */
#include "testutil.h"
#include "model.h"

#include <stdio.h>
#include <string.h>

static mp_status parse(const char *json, mp_model *m, mp_error *err)
{
    mp_error_clear(err);
    return mp_model_parse(json, strlen(json), "m.json", m, err);
}

#define HEAD "{\"format\":\"mpkit-model/1\",\"name\":\"t\",\"input_dim\":6,"

static void test_expansion_and_dims(void)
{
    mp_model m;
    mp_error err;
    const char *j = HEAD "\"layers\":[{\"type\":\"linear\",\"out\":8},"
        "{\"repeat\":3,\"layers\":[{\"type\":\"residual_mlp\",\"hidden\":16},{\"type\":\"relu\"}]},"
        "{\"type\":\"layernorm\"},{\"type\":\"linear\",\"out\":4,\"bias\":false}],"
        "\"loss\":{\"type\":\"cross_entropy\",\"classes\":4}}";
    CU_ASSERT_FATAL(parse(j, &m, &err) == MP_OK);
    CU_ASSERT_EQUAL(m.num_layers, 1 + 3 * 2 + 1 + 1);
    CU_ASSERT_STRING_EQUAL(m.name, "t");
    CU_ASSERT_EQUAL(m.loss, MP_LOSS_XENT);
    CU_ASSERT_EQUAL(m.classes, 4);
    CU_ASSERT_STRING_EQUAL(m.layers[0].name, "linear0");
    CU_ASSERT_STRING_EQUAL(m.layers[1].name, "block0.residual_mlp");
    CU_ASSERT_STRING_EQUAL(m.layers[2].name, "block0.relu");
    CU_ASSERT_STRING_EQUAL(m.layers[5].name, "block2.residual_mlp");
    CU_ASSERT_STRING_EQUAL(m.layers[7].name, "layernorm");
    CU_ASSERT_STRING_EQUAL(m.layers[8].name, "linear1");
    CU_ASSERT_EQUAL(m.layers[0].in_dim, 6);
    CU_ASSERT_EQUAL(m.layers[0].out_dim, 8);
    CU_ASSERT_EQUAL(m.layers[0].param_count, 6 * 8 + 8);
    CU_ASSERT_EQUAL(m.layers[1].in_dim, 8);
    CU_ASSERT_EQUAL(m.layers[1].out_dim, 8);
    CU_ASSERT_EQUAL(m.layers[1].hidden, 16);
    CU_ASSERT_EQUAL(m.layers[1].param_count, 2 * 8 + 8 * 16 + 16 + 16 * 8 + 8);
    CU_ASSERT_EQUAL(m.layers[2].param_count, 0);
    CU_ASSERT_EQUAL(m.layers[7].param_count, 16);
    CU_ASSERT_EQUAL(m.layers[8].bias, 0);
    CU_ASSERT_EQUAL(m.layers[8].param_count, 8 * 4);
    long long total = 56 + 3 * 296 + 16 + 32;
    CU_ASSERT_EQUAL(mp_model_param_count(&m), total);
    mp_model_free(&m);
    CU_ASSERT_EQUAL(m.num_layers, 0);
}

static void test_nested_repeats_and_names(void)
{
    mp_model m;
    mp_error err;
    const char *j = HEAD "\"layers\":[{\"repeat\":2,\"name\":\"enc\",\"layers\":["
        "{\"repeat\":3,\"layers\":[{\"type\":\"gelu\"}]},{\"type\":\"linear\",\"out\":6,\"name\":\"proj\"}]},"
        "{\"repeat\":2,\"layers\":[{\"type\":\"relu\"}]},{\"repeat\":1,\"layers\":[{\"type\":\"relu\"}]}],"
        "\"loss\":\"mse\"}";
    CU_ASSERT_FATAL(parse(j, &m, &err) == MP_OK);
    CU_ASSERT_EQUAL(m.num_layers, 2 * (3 + 1) + 2 + 1);
    CU_ASSERT_STRING_EQUAL(m.layers[0].name, "enc0.block0.gelu");
    CU_ASSERT_STRING_EQUAL(m.layers[2].name, "enc0.block2.gelu");
    CU_ASSERT_STRING_EQUAL(m.layers[3].name, "enc0.proj");
    CU_ASSERT_STRING_EQUAL(m.layers[7].name, "enc1.proj");
    CU_ASSERT_STRING_EQUAL(m.layers[8].name, "block0_0.relu");
    CU_ASSERT_STRING_EQUAL(m.layers[10].name, "block1_0.relu");
    CU_ASSERT_EQUAL(m.loss, MP_LOSS_MSE);
    mp_model_free(&m);
    /* loss defaults to mse; "cross_entropy" as a string takes the final width */
    CU_ASSERT_FATAL(parse(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":3}],\"loss\":\"cross_entropy\"}", &m, &err) == MP_OK);
    CU_ASSERT_EQUAL(m.classes, 3);
    mp_model_free(&m);
}

/* Each bad spec fails with MP_ERR_INPUT and a message containing `want`. */
static void expect_error(const char *json, const char *want)
{
    mp_model m;
    mp_error err;
    mp_status st = parse(json, &m, &err);
    CU_ASSERT_EQUAL(st, MP_ERR_INPUT);
    CU_ASSERT_EQUAL(m.num_layers, 0);
    CU_ASSERT_PTR_NULL(m.layers);
    if (!strstr(err.msg, want) || strncmp(err.msg, "m.json", 6)) {
        printf("\n  message '%s' lacks '%s'", err.msg, want);
        CU_FAIL("error message");
    }
}

static void test_errors(void)
{
    expect_error(HEAD "\"layers\":[{\"type\":\"conv\"}]}", "layers[0].type: unknown layer type 'conv'");
    expect_error(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":0}]}", "layers[0].out: must be a positive integer");
    expect_error(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":-3}]}", "layers[0].out");
    expect_error(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":2.5}]}", "layers[0].out");
    expect_error(HEAD "\"layers\":[{\"type\":\"linear\"}]}", "layers[0].out: missing");
    expect_error(HEAD "\"layers\":[{\"type\":\"residual_mlp\",\"hiden\":4}]}", "unknown field 'hiden'");
    expect_error(HEAD "\"layers\":[{\"repeat\":1,\"layers\":[{\"type\":\"residual_mlp\",\"hidden\":0}]}]}",
                 "layers[0].layers[0].hidden");
    expect_error(HEAD "\"layers\":[{\"repeat\":0,\"layers\":[{\"type\":\"relu\"}]}]}", "layers[0].repeat");
    expect_error(HEAD "\"layers\":[{\"repeat\":\"x\",\"layers\":[{\"type\":\"relu\"}]}]}", "layers[0].repeat");
    expect_error(HEAD "\"layers\":[{\"repeat\":2,\"layers\":[]}]}", "layers[0].layers: must be a non-empty array");
    expect_error(HEAD "\"layers\":[{\"repeat\":100000,\"layers\":[{\"repeat\":100000,\"layers\":[{\"type\":\"relu\"}]}]}]}",
                 "more than");
    expect_error(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":4}],\"loss\":{\"type\":\"cross_entropy\",\"classes\":5}}",
                 "loss.classes: 5 classes but the last layer outputs 4");
    expect_error(HEAD "\"layers\":[{\"type\":\"relu\"}],\"loss\":\"hinge\"}", "unknown loss 'hinge'");
    expect_error(HEAD "\"layers\":[]}", "layers: must be a non-empty array");
    expect_error("{\"format\":\"mpkit-model/1\",\"layers\":[{\"type\":\"relu\"}]}", "input_dim: missing");
    expect_error("{\"format\":\"mpkit-model/1\",\"input_dim\":0,\"layers\":[{\"type\":\"relu\"}]}", "input_dim");
    expect_error("{\"format\":\"mpplan-profile/1\",\"input_dim\":3,\"layers\":[{\"type\":\"relu\"}]}", "format");
    expect_error(HEAD "\"layers\":[{\"type\":\"relu\",\"out\":3}]}", "only linear layers change the width");
    expect_error(HEAD "\"layers\":[7]}", "layers[0]: must be an object");
    expect_error("{\"format\":\n  \"mpkit-model/1\",,}", "m.json:2:");   /* syntax: line and column */
    /* missing file: MP_ERR_IO */
    mp_model m;
    mp_error err = {0};
    CU_ASSERT_EQUAL(mp_model_load("/nonexistent/x.json", &m, &err), MP_ERR_IO);
    CU_ASSERT(strstr(err.msg, "/nonexistent/x.json") != NULL);
}

#define TOK "{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":50,\"seq_len\":8},"
#define HEADLOSS ",{\"type\":\"linear\",\"out\":50,\"bias\":false}],\"loss\":{\"type\":\"cross_entropy\",\"classes\":50}}"

static void test_token_model(void)
{
    mp_model m;
    mp_error err;
    const char *j = TOK "\"layers\":[{\"type\":\"embedding\",\"dim\":12},"
        "{\"repeat\":2,\"layers\":[{\"type\":\"attention\",\"heads\":3},{\"type\":\"residual_mlp\",\"hidden\":20}]},"
        "{\"type\":\"attention\",\"heads\":2,\"causal\":false},{\"type\":\"layernorm\"}" HEADLOSS;
    CU_ASSERT_FATAL(parse(j, &m, &err) == MP_OK);
    CU_ASSERT(mp_model_is_tokens(&m));
    CU_ASSERT_EQUAL(m.vocab, 50);
    CU_ASSERT_EQUAL(m.seq_len, 8);
    CU_ASSERT_EQUAL(m.input_dim, 8);   /* the ids, as floats */
    CU_ASSERT_EQUAL(m.classes, 50);
    CU_ASSERT_EQUAL(mp_model_labels_per_sample(&m), 8);
    CU_ASSERT_EQUAL(m.num_layers, 1 + 4 + 1 + 1 + 1);
    CU_ASSERT_STRING_EQUAL(m.layers[0].name, "embedding");
    CU_ASSERT_STRING_EQUAL(m.layers[1].name, "block0.attention");
    CU_ASSERT_STRING_EQUAL(m.layers[4].name, "block1.residual_mlp");
    CU_ASSERT_STRING_EQUAL(m.layers[5].name, "attention");
    /* widths are per sample: seq_len tokens of the per-token width */
    CU_ASSERT_EQUAL(m.layers[0].in_dim, 8);
    CU_ASSERT_EQUAL(m.layers[0].out_dim, 8 * 12);
    CU_ASSERT_EQUAL(m.layers[0].vocab, 50);
    CU_ASSERT_EQUAL(m.layers[0].param_count, (50 + 8) * 12);
    CU_ASSERT_EQUAL(m.layers[1].heads, 3);
    CU_ASSERT_EQUAL(m.layers[1].causal, 1);
    CU_ASSERT_EQUAL(m.layers[1].param_count, 4 * 12 * 12 + 6 * 12);
    CU_ASSERT_EQUAL(m.layers[5].causal, 0);
    CU_ASSERT_EQUAL(m.layers[2].param_count, 2 * 12 + 2 * 12 * 20 + 20 + 12);
    CU_ASSERT_EQUAL(m.layers[7].in_dim, 8 * 12);
    CU_ASSERT_EQUAL(m.layers[7].out_dim, 8 * 50);
    CU_ASSERT_EQUAL(m.layers[7].param_count, 12 * 50);
    for (int k = 0; k < m.num_layers; k++) {
        CU_ASSERT_EQUAL(m.layers[k].tokens, 8);
        if (k) CU_ASSERT_EQUAL(m.layers[k].in_dim, m.layers[k - 1].out_dim);
    }
    mp_model_free(&m);
    /* input_dim models: one row per sample, one label */
    CU_ASSERT_FATAL(parse(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":3}],\"loss\":\"cross_entropy\"}", &m, &err) == MP_OK);
    CU_ASSERT(!mp_model_is_tokens(&m));
    CU_ASSERT_EQUAL(m.layers[0].tokens, 1);
    CU_ASSERT_EQUAL(mp_model_labels_per_sample(&m), 1);
    mp_model_free(&m);
    CU_ASSERT_FATAL(parse(HEAD "\"layers\":[{\"type\":\"linear\",\"out\":3}]}", &m, &err) == MP_OK);
    CU_ASSERT_EQUAL(mp_model_labels_per_sample(&m), 0);
    mp_model_free(&m);
}

/* A spec with the top-level field(s) `input` (JSON) and a small token body
 * fails with `want`. */
static void expect_input_error(const char *input, const char *want)
{
    char j[1024];
    snprintf(j, sizeof j, "{\"format\":\"mpkit-model/1\",%s,\"layers\":[{\"type\":\"embedding\",\"dim\":4},"
             "{\"type\":\"linear\",\"out\":50}]}", input);
    expect_error(j, want);
}

static void test_token_errors(void)
{
    const char *emb = "{\"type\":\"embedding\",\"dim\":12}";
    char j[1024];
#define TOKJ(layers, loss) (snprintf(j, sizeof j, TOK "\"layers\":[%s]%s}", layers, loss), j)
    const char *xent = ",\"loss\":{\"type\":\"cross_entropy\",\"classes\":50}";
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"attention\",\"heads\":5},{\"type\":\"linear\",\"out\":50}", xent),
                 "layers[1].heads: width 12 is not divisible by 5 heads");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"linear\",\"out\":50}",
                      ",\"loss\":{\"type\":\"cross_entropy\",\"classes\":49}"),
                 "loss.classes: 49 classes but the vocabulary has 50 tokens");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"linear\",\"out\":40}", ",\"loss\":\"cross_entropy\""),
                 "loss: the last layer outputs 40 values per token but cross_entropy over the vocabulary needs 50");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"linear\",\"out\":50}", ""),
                 "loss: a token model needs {\"type\": \"cross_entropy\", \"classes\": 50}");
    expect_error(TOKJ("{\"type\":\"linear\",\"out\":50}", xent),
                 "layers[0].type: a token model's first layer must be embedding (got 'linear')");
    expect_error(TOKJ("{\"repeat\":2,\"layers\":[{\"type\":\"embedding\",\"dim\":12}]},{\"type\":\"linear\",\"out\":50}", xent),
                 "layers[0].layers[0].type: embedding must be the model's first layer");
    snprintf(j, sizeof j, TOK "\"layers\":[%s,%s,{\"type\":\"linear\",\"out\":50}]%s}", emb, emb, xent);
    expect_error(j, "layers[1].type: embedding must be the model's first layer");
    expect_error(TOKJ("{\"type\":\"embedding\"},{\"type\":\"linear\",\"out\":50}", xent), "layers[0].dim: missing");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"attention\"}", xent), "layers[1].heads: missing");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"attention\",\"heads\":2,\"causal\":1}", xent),
                 "layers[1].causal: must be true or false");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12,\"heads\":2}", xent), "layers[0].heads: only attention takes 'heads'");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"relu\",\"dim\":3}", xent), "layers[1].dim: only embedding takes 'dim'");
    expect_error(TOKJ("{\"type\":\"embedding\",\"dim\":12},{\"type\":\"linear\",\"out\":50,\"causal\":true}", xent),
                 "layers[1].causal: only attention takes 'causal'");
    /* attention and embedding need a token model */
    expect_error(HEAD "\"layers\":[{\"type\":\"attention\",\"heads\":2}]}", "layers[0].type: attention needs a token model");
    expect_error(HEAD "\"layers\":[{\"type\":\"embedding\",\"dim\":4}]}", "layers[0].type: embedding needs a token model");
    /* the input object */
    expect_input_error("\"input_dim\":3,\"input\":{\"type\":\"tokens\",\"vocab\":50,\"seq_len\":8}", "input_dim: give either input_dim or input, not both");
    expect_input_error("\"input\":{\"type\":\"pixels\",\"vocab\":50,\"seq_len\":8}", "input.type: unknown input type 'pixels' (known: tokens)");
    expect_input_error("\"input\":{\"vocab\":50,\"seq_len\":8}", "input.type: missing");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":1,\"seq_len\":8}", "input.vocab: must be at least 2 (got 1)");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":2000000,\"seq_len\":8}", "input.vocab: must be a positive integer <= 1048576");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":50,\"seq_len\":0}", "input.seq_len: must be a positive integer <= 65536 (got 0)");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":50,\"seq_len\":100000}", "input.seq_len: must be a positive integer <= 65536");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":50}", "input.seq_len: missing");
    expect_input_error("\"input\":{\"type\":\"tokens\",\"vocab\":50,\"seq_len\":8,\"bos\":1}", "input: unknown field 'bos'");
    expect_input_error("\"input\":\"tokens\"", "input: must be an object");
    /* a sample too large: 65536 tokens of width 20000 */
    expect_error("{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":1048576,\"seq_len\":65536},"
                 "\"layers\":[{\"type\":\"embedding\",\"dim\":20000}]}", "layers[0]: 1310720000 values per sample (seq_len 65536 x width 20000) is more than");
#undef TOKJ
}

static void test_shipped_specs(void)
{
    static const struct { const char *file; int units; long long params; } specs[] = {
        {"profiles/tiny.model.json", 10, (64 * 128 + 128) + 6LL * (2 * 128 + 2 * 128 * 256 + 256 + 128) + 256 + (128 * 10 + 10)},
        {"profiles/mlp-small.model.json", 11, (256 * 512 + 512) + 8LL * (2 * 512 + 2 * 512 * 2048 + 2048 + 512) + 1024 + (512 * 256 + 256)},
        {"profiles/mlp24-1024.model.json", 26, 24LL * (2 * 1024 + 2 * 1024 * 4096 + 4096 + 1024) + 2048 + (1024 * 1024 + 1024)},
        {"profiles/mlp24-4096.model.json", 26, 24LL * (2 * 4096 + 2 * 4096LL * 16384 + 16384 + 4096) + 8192 + (4096LL * 4096 + 4096)},
        /* token models: embedding (V + T) d, blocks of attention 4d^2 + 6d and residual_mlp, layernorm, head d V */
        {"profiles/gpt-mini.model.json", 1 + 16 + 2, (8192 + 128) * 256LL + 8 * (4LL * 256 * 256 + 6 * 256 + 2 * 256 + 2 * 256 * 1024 + 1024 + 256) + 512 + 256LL * 8192},
        {"profiles/gpt2-small.model.json", 1 + 24 + 2, (50257 + 1024) * 768LL + 12 * (4LL * 768 * 768 + 6 * 768 + 2 * 768 + 2 * 768 * 3072 + 3072 + 768) + 1536 + 768LL * 50257},
        {"tests/fixtures/tiny_gpt.model.json", 1 + 4 + 2, (64 + 16) * 32 + 2 * (4 * 32 * 32 + 6 * 32 + 2 * 32 + 2 * 32 * 64 + 64 + 32) + 64 + 32 * 64},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        mp_model m;
        mp_error err = {0};
        mp_status st = mp_model_load(specs[i].file, &m, &err);
        if (st) printf("\n%s\n", err.msg);
        CU_ASSERT_FATAL(st == MP_OK);
        CU_ASSERT_EQUAL(m.num_layers, specs[i].units);
        CU_ASSERT_EQUAL(mp_model_param_count(&m), specs[i].params);
        for (int k = 1; k < m.num_layers; k++) CU_ASSERT_EQUAL(m.layers[k].in_dim, m.layers[k - 1].out_dim);
        mp_model_free(&m);
    }
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_expansion_and_dims), MP_TEST(test_nested_repeats_and_names),
        MP_TEST(test_errors), MP_TEST(test_token_model), MP_TEST(test_token_errors),
        MP_TEST(test_shipped_specs),
    };
    return mp_test_main("model", cases, (int)(sizeof cases / sizeof cases[0]));
}
