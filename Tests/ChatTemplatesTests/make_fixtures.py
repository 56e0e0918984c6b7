"""Writes Fixtures/chat_templates.json: real-world-shaped chat templates (Llama 3.1/3.2 Instruct, Qwen2.5 Instruct,
Qwen3, SmolLM2 Instruct, Mistral Instruct) and small feature templates, each rendered over many conversations
by transformers' own renderer (`render_jinja_template`, jinja2's ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks). ChatTemplatesTests checks that ChatTemplates renders every case byte for byte.

Run: /work/venv/bin/python Tests/ChatTemplatesTests/make_fixtures.py
"""

import json
import os
from datetime import datetime
from unittest import mock

import jinja2
import transformers
from transformers.utils import chat_template_utils
from transformers.utils.chat_template_utils import render_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))

LLAMA_31 = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Llama 3.2 takes today's date from strftime_now.
LLAMA_32 = LLAMA_31.replace(
    """{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}""",
    """{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}""",
)

QWEN_25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

QWEN_3 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

SMOLLM2 = """{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}"""

MISTRAL = r"""{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
{%- endfor %}
"""

# Small templates over the rest of the subset: whitespace control, filters, tests, methods, slices, literals.
FEATURES = {
    "whitespace": "  {% if true %}\n  yes\n  {% endif %}\n{{ 'x' }}  \n {#- comment -#} \n end\n\t{%+ if true %}kept{% endif %}\n{% if true -%}\n\n  stripped {%- endif %}\n  {{- ' v' -}}  \n  {# plain comment #}\nafter\r\nwindows\rmac\n\n",
    "filters": "{{ '  a b  ' | trim }}|{{ [1,2,3] | length }}|{{ 'abc' | upper }}{{ 'ÀB' | lower }}|{{ missing | default('d') }}|{{ '' | default('e', true) }}|"
    "{{ ['a','b'] | join('-') }}|{{ [1,2] | first }}{{ [1,2] | last }}|{{ 'hello' | replace('l','L') }}|{{ 'hELLO world' | capitalize }}|"
    "{{ {'a': [1, 2.5, none, true, 'é\"\\n\\t<>&'], 'b': {}} | tojson }}|{{ {'a': 1, 'b': [1, {'c': []}]} | tojson(indent=2) }}|{{ 'abc' | list }}|"
    "{{ 42 | string ~ 'x' }}|{{ messages | length }}|{{ 'x' | title }}{{ 'hello big-world' | title }}|{{ [3, 1] | reverse | list }}|{{ -3 | abs }}|{{ '7' | int + 1 }}|"
    "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ {'k': 'v'} | items | list }}|{{ none | string }}|{{ 'a' | tojson }}",
    "select": "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|"
    "{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}|{{ [0, 1, 2, '', 'x'] | select | list }}|"
    "{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ messages | map(attribute='role') | list }}|{{ ['a', 'b'] | map('upper') | join }}",
    "slices": "{{ 'abcdef'[::-1] }} {{ 'abcdef'[1:] }} {{ [1,2,3,4][1:3] }} {{ 'abcdef'[-2:] }} {{ [1,2,3][::2] }} {{ [1,2,3][-1] }} {{ 'héllo'[1] }} {{ [1,2,3][5:] }} {{ 'abc'[10:-10:-1] }} {{ messages[-1].content }}",
    "tests": "{{ missing is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }}"
    " {{ not true }} {{ true and false or true }} {{ 3 is odd }} {{ 4 is even }} {{ 1 is number }} {{ true is boolean }} {{ false is false }}"
    " {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ missing is undefined }} {{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ x is not none }}"
    " {{ messages[0] is mapping }} {{ messages[0].content is string }} {{ 5 is divisibleby 5 }} {{ 1 is sameas 1 }} {{ none is sameas none }} {{ 'a' is equalto 'a' }}",
    "methods": "{{ ' x '.strip() }}|{{ 'abc'.startswith('a') }}|{{ 'abc'.endswith(('c','d')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a b  c '.split() }}|"
    "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}|{{ {'a': 1}.get('b', 'none') }}|{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('z') }}|"
    "{{ 'xxhixx'.strip('x') }}|{{ 'a-b-c'.split('-', 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ ', '.join(['a', 'b']) }}|"
    "{{ 'aXbX'.replace('X', 'y', 1) }}|{{ {'a': 1, 'b': 2}.keys() | list }}|{{ {'a': 1}.values() | list }}|{{ 'a b'.title() }}|{{ '\\n\\nq\\n'.lstrip('\\n') }}|{{ 'q\\n\\n'.rstrip() }}",
    "loops": "{% set ns = namespace(count=0, names=[]) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.names = ns.names + [m.role] %}"
    "{{ loop.index0 }}/{{ loop.index }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.revindex }} {% endfor %}{{ ns.count }} {{ ns.names }}"
    "{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %} x={{ x }}"
    "{% for i in [] %}never{% else %} empty{% endfor %}"
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    "{% for i in range(6) if i is even %}{{ i }}{{ '' if loop.last else ',' }}{% endfor %}"
    "{% for c in 'ab' %}[{{ c }}{{ loop.cycle('+', '-') }}]{% endfor %}{% for k in {'p': 1, 'q': 2} %}{{ k }}{% endfor %}"
    "{% set block %}captured {{ 1 + 1 }}{% endset %} {{ block }}",
    "printing": "{{ [1, 'a', none, true, 1.5, \"it's\"] }} {{ {'k': 'v', 1: (2, 3)} }} {{ none }} {{ 1/2 }} {{ 7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e20 }} {{ 0.0001 }}"
    " {{ 1.0 }} {{ 1.5e-7 }} {{ 123456789.125 }} {{ 10 / 4 }} {{ (1,) }} {{ 3 - 5 * 2 }} {{ -2 ** 2 }} {{ 1e16 }} {{ 12345678901234567.0 }} {{ 7 % -3 }} {{ -7 // 2 }} {{ true + 1 }}",
    "concat": "{{ 'a' ~ 1 ~ none ~ missing }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }} {{ 'yes' if messages else 'no' }} {{ 'x' if false }}!"
    " {{ \"tab\\tnew\\nline \\u00e9 \\x41 \\\\ \\' \" }} {{ 'adj' 'acent' }} {{ [1, 2,] }} {{ {'a': 1,} }} {{ messages[0]['role'] ~ messages[0].role }}",
}

SPECIAL_TOKENS = {
    "llama31": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama32": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen25": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
}
TEMPLATES = {"llama31": LLAMA_31, "llama32": LLAMA_32, "qwen25": QWEN_25, "qwen3": QWEN_3, "smollm2": SMOLLM2, "mistral": MISTRAL}


def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = {
    "single": [m("user", "Hello!")],
    "system": [m("system", "You are terse."), m("user", "Hi there")],
    "multi_turn": [m("system", "Be kind."), m("user", "What is 2+2?"), m("assistant", "4"), m("user", "And 3+3?")],
    "no_system_multi": [m("user", "one"), m("assistant", "two"), m("user", "three"), m("assistant", "four")],
    "unicode": [m("user", "  héllo 世界 🎉 e\u0301 \u00a0padded\t\n"), m("assistant", "Ça va — très bien ✓"), m("user", "¿Qué?\n\n")],
    "empty": [m("user", "")],
    "empty_system": [m("system", ""), m("user", ""), m("assistant", ""), m("user", " ")],
    "thinking": [m("user", "Why?"), m("assistant", "<think>\nBecause.\n</think>\n\nIt is so."), m("user", "Sure?")],
    "thinking_last": [m("user", "Why?"), m("assistant", "<think>\nstep one\nstep two\n</think>\n\nDone.")],
    "quotes": [m("user", "She said \"hi\" and 'bye' {{ not a tag }} {% neither %} \\n")],
    "alternation_broken": [m("user", "a"), m("user", "b")],
    "starts_with_assistant": [m("assistant", "I speak first"), m("user", "ok")],
    "bad_role": [m("user", "a"), m("assistant", "b"), m("tool", "c")],
}

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city, in °C.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "description": "The time", "parameters": {"type": "object", "properties": {}}}},
]
TOOL_CHAT = [
    m("system", "Use tools."),
    m("user", "Weather in Paris?"),
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
    m("tool", "{\"temp\": 21}"),
    m("tool", "second"),
    m("user", "<tool_response>x</tool_response>"),
    {"role": "assistant", "content": "Checking", "tool_calls": [{"function": {"name": "now", "arguments": "{}"}}, {"function": {"name": "now", "arguments": {}}}]},
]
LLAMA_TOOL_CHAT = [m("system", "Use tools."), m("user", "Weather in Paris?"),
                   {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                   {"role": "tool", "content": {"temp": 21}}, m("user", "thanks")]

NOW = datetime(2024, 7, 26, 12, 0, 0)


def render(source, messages, add_generation_prompt, tokens, extra):
    with mock.patch.object(chat_template_utils, "datetime", mock.Mock(now=lambda: NOW)):
        chat_template_utils._cached_compile_jinja_template.cache_clear() if hasattr(chat_template_utils._cached_compile_jinja_template, "cache_clear") else None
        try:
            rendered = render_jinja_template(
                conversations=[messages], chat_template=source, add_generation_prompt=add_generation_prompt, **tokens, **extra)
            return {"expected": rendered[0][0]}
        except jinja2.exceptions.TemplateError as error:
            # raise_exception's message is checked; others only as a failure.
            raised = type(error) is jinja2.exceptions.TemplateError
            return {"error": str(error) if raised else "", "raised": raised}


def main():
    cases = []
    for name, source in TEMPLATES.items():
        for conversation, messages in CONVERSATIONS.items():
            for add in (False, True):
                case = {"template": name, "conversation": conversation, "messages": messages, "add_generation_prompt": add,
                        "variables": SPECIAL_TOKENS[name]}
                case.update(render(source, messages, add, SPECIAL_TOKENS[name], {}))
                cases.append(case)
    extras = [
        ("qwen25", TOOL_CHAT, {"tools": TOOLS}), ("qwen25", TOOL_CHAT, {}), ("qwen3", TOOL_CHAT, {"tools": TOOLS}), ("qwen3", TOOL_CHAT, {}),
        ("qwen3", CONVERSATIONS["multi_turn"], {"enable_thinking": False}), ("qwen3", CONVERSATIONS["thinking"], {"enable_thinking": True}),
        ("llama31", LLAMA_TOOL_CHAT, {"tools": TOOLS}), ("llama31", LLAMA_TOOL_CHAT, {"tools": TOOLS, "tools_in_user_message": False}),
        ("llama31", CONVERSATIONS["system"], {"date_string": "01 Jan 2025"}),
        ("llama31", [m("system", "s")], {"tools": TOOLS}),
        ("llama31", LLAMA_TOOL_CHAT, {"builtin_tools": ["code_interpreter", "get_weather"], "tools": TOOLS}),
    ]
    for name, messages, extra in extras:
        variables = {**SPECIAL_TOKENS[name], **extra}
        for add in (False, True):
            case = {"template": name, "conversation": "extra", "messages": messages, "add_generation_prompt": add, "variables": variables}
            case.update(render(TEMPLATES[name], messages, add, SPECIAL_TOKENS[name], extra))
            cases.append(case)
    for name, source in FEATURES.items():
        for conversation in ("multi_turn", "unicode"):
            messages = CONVERSATIONS[conversation]
            case = {"template": "feature_" + name, "conversation": conversation, "messages": messages, "add_generation_prompt": True,
                    "variables": {"x": 1}}
            case.update(render(source, messages, True, {}, {"x": 1}))
            cases.append(case)
    templates = {**TEMPLATES, **{"feature_" + k: v for k, v in FEATURES.items()}}
    fixture = {
        "generator": f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}: render_jinja_template",
        "now_unix": NOW.timestamp(), "now_local": NOW.isoformat(), "templates": templates, "cases": cases}
    os.makedirs(os.path.join(HERE, "Fixtures"), exist_ok=True)
    with open(os.path.join(HERE, "Fixtures", "chat_templates.json"), "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    failures = sum("expected" not in c for c in cases)
    print(f"{len(cases)} cases ({failures} errors) from {len(templates)} templates")


if __name__ == "__main__":
    main()
